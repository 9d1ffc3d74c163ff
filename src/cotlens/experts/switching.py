"""Study 4's switching conditions: the top-k experts of the fTRI map and random k-sets,
switched off or forced on, measured side by side (each copy of a batch under its own
switch: :class:`cotlens.experts.methods.RowSwitches`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from cotlens.core.types import SWITCH_MODES, SwitchMode
from cotlens.experts.methods import RowSwitches, by_layer, forceable, random_experts, top_experts
from cotlens.experts.responses import (
    Scored,
    continuation_nll,
    interleave,
    prompt_ids,
    reference_seqs,
    respond,
    unscramble,
)
from cotlens.models.loading import Loaded


class Condition(NamedTuple):
    condition: str  # baseline | top | random
    mode: SwitchMode | Literal["none"]
    k: int
    seed: int  # the random draw; -1 otherwise
    experts: list[tuple[int, int]]  # (layer, expert)


class Asked(NamedTuple):
    """The study and quality questions and the reference pairs, tokenized once for every
    condition (:meth:`of`)."""

    prompts: list[list[int]]  # each question's rendered prompt
    references: list[tuple[list[int], list[int]]]  # each reference pair's (prompt, answer)

    @classmethod
    def of(cls, tok: Any, questions: Sequence[str], pairs: Sequence[tuple[str, str]]) -> Asked:
        return cls(prompt_ids(tok, questions), reference_seqs(tok, pairs))


class Measured(NamedTuple):
    switched: str  # e.g. "L2E5 L3E1"
    said: list[tuple[str, list[int]]]  # each study and quality question's response (text, ids)
    nll: list[tuple[float, int]]  # each reference answer's summed NLL and tokens
    fluency: list[tuple[float, int]]  # each response's NLL under the model with no switch


def score_map(ftri_rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The [layers, experts] fTRI scores of a map's rows."""
    score = np.zeros((max(r["layer"] for r in ftri_rows) + 1, max(r["expert"] for r in ftri_rows) + 1))
    for r in ftri_rows:
        score[r["layer"], r["expert"]] = r["score"]
    return score


def conditions(
    score: np.ndarray, ks: Sequence[int], random_seeds: int, layers: Sequence[int], n_exp: int
) -> list[Condition]:
    """No switch; then per k and mode the top-k experts, and ``random_seeds`` random k-sets
    (other than the top ones)."""
    out = [Condition("baseline", "none", 0, -1, [])]
    for k in ks:
        top = top_experts(score, int(k))
        for mode in SWITCH_MODES:
            out.append(Condition("top", mode, int(k), -1, top))
            for seed in range(int(random_seeds)):
                out.append(Condition("random", mode, int(k), seed, random_experts(layers, n_exp, int(k), seed, top)))
    return out


def measure(
    lm: Loaded,
    chunk: Sequence[Condition],
    asked: Asked,
    generation: Mapping[str, Any],
    slots: Mapping[int, int],
    fluency: Scored | None = None,
) -> list[Measured]:
    """The conditions of ``chunk`` side by side: every batch holds the same prompts once per
    condition, each copy under its own switch; then each response's fluency with no switch
    (the quality guard's), one condition's responses a batch at a time: a batch of responses
    an earlier condition gave word for word is scored once (``fluency``, kept by the stage;
    most random switches of one expert change no response of a batch)."""
    switches: list[tuple[SwitchMode, dict[int, list[int]]] | None] = []
    labels = []
    for c in chunk:
        experts = forceable(c.experts, slots) if c.mode == "on" else c.experts
        labels.append(" ".join(f"L{lay}E{e}" for lay, e in experts))
        switches.append((c.mode, by_layer(experts)) if experts and c.mode != "none" else None)
    g, bs = len(chunk), int(generation["batch_size"])
    n, n_ref = len(asked.prompts), len(asked.references)
    order, rorder = interleave(n, bs, g), interleave(n_ref, bs, g)
    with RowSwitches(lm.model, lm.adapter, switches) as sw:
        said_all = respond(
            lm,
            [asked.prompts[j] for _, j in order],
            {**generation, "batch_size": bs * g},
            groups=[c for c, _ in order],
            on_groups=sw.rows,
        )
        refs = [asked.references[j] for _, j in rorder]
        nll_all = continuation_nll(lm, refs, bs * g, [c for c, _ in rorder], sw.rows)
    said = unscramble(order, said_all, g, n)
    nlls = unscramble(rorder, nll_all, g, n_ref)
    fl = [
        continuation_nll(lm, [(p, ids) for p, (_, ids) in zip(asked.prompts, said[c], strict=True)], bs, memo=fluency)
        for c in range(g)
    ]
    return [Measured(labels[c], said[c], nlls[c], fl[c]) for c in range(g)]
