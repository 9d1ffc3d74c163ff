"""Relation probing: does a layer's residual stream at two question words encode whether
the ontology relates them (related / negated / unrelated)?

Examples come from the question's facts: ``Every A is B`` gives (A, B) related,
``Every A is not B`` gives (A, B) negated, and two words of the question with no rule
between them give an unrelated pair (sampled to the size of the related class). The
features of (A, B) are the residual streams after block l at the last token of the
first mention of A and of B, concatenated. Caveat, stated in the caption: when B's first
mention is the rule itself, its own position has read "not" already; the unrelated
class is what the probe cannot read off locally.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

LABELS = ("related", "negated", "unrelated")
_RULE = re.compile(r"Every (?P<a>[\w-]+) is (?P<neg>not )?(?:an? )?(?P<b>[\w-]+)\.")


@dataclass(frozen=True)
class RelationExample:
    prompt_id: int
    a_char: tuple[int, int]  # char span of A's first mention
    b_char: tuple[int, int]
    label: int  # index into LABELS
    words: tuple[str, str] = ("", "")  # (A, B): the pair's type, for the control task


def _first_span(word: str, text: str) -> tuple[int, int] | None:
    m = re.search(rf"\b{re.escape(word)}\b", text)
    return (m.start(), m.end()) if m else None


def relation_examples(prompt_id: int, question: str, seed: int = 0) -> list[RelationExample]:
    """Labelled word pairs of one question (pure text work)."""
    rules: dict[tuple[str, str], int] = {}
    words: list[str] = []
    for m in _RULE.finditer(question):
        rules[(m["a"], m["b"])] = 1 if m["neg"] else 0
        for w in (m["a"], m["b"]):
            if w not in words:
                words.append(w)
    out = []
    for (a, b), lab in rules.items():
        sa, sb = _first_span(a, question), _first_span(b, question)
        if sa and sb:
            out.append(RelationExample(prompt_id, sa, sb, lab, (a, b)))
    unrelated = [(a, b) for a in words for b in words if a != b and (a, b) not in rules and (b, a) not in rules]
    rng = random.Random(f"{seed}|{prompt_id}")
    n_rel = sum(1 for e in out if e.label == 0)
    for a, b in rng.sample(unrelated, min(len(unrelated), max(1, n_rel))):
        sa, sb = _first_span(a, question), _first_span(b, question)
        if sa and sb:
            out.append(RelationExample(prompt_id, sa, sb, 2, (a, b)))
    return out


def token_at_char_end(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> int:
    """Index of the token holding the span's last character."""
    last = span[1] - 1
    for i, (s, e) in enumerate(offsets):
        if s <= last < e:
            return i
    raise ValueError(f"no token covers character {last}")


def fit_probe(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    l2: float = 1e-3,
    steps: int = 200,
) -> tuple[float, float]:
    """Multinomial logistic regression (standardised features, L2, LBFGS) -> (train acc, test acc).

    Solved in the row space of the training features: with an L2 penalty the optimal
    weights are a combination of the training rows (w = V b, ||w|| = ||b||), so fitting b
    on the N_train coordinates X V is the same problem, several times cheaper when the
    features outnumber the examples (as residual streams of a few hundred pairs do)."""
    mu, sd = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    xt, xs = (x_train - mu) / sd, (x_test - mu) / sd
    if xt.shape[0] < xt.shape[1]:
        _, _, vh = torch.linalg.svd(xt, full_matrices=False)  # vh: [N_train, F], orthonormal rows
        xt, xs = xt @ vh.T, xs @ vh.T
    n_cls = len(LABELS)
    w = torch.zeros(xt.shape[1], n_cls, requires_grad=True)
    b = torch.zeros(n_cls, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Any:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, y_train) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        acc_tr = float(((xt @ w + b).argmax(-1) == y_train).float().mean())
        acc_te = float(((xs @ w + b).argmax(-1) == y_test).float().mean()) if len(y_test) else float("nan")
    return acc_tr, acc_te


def control_labels(types: Sequence[Hashable], labels: Sequence[int], seed: int = 0) -> list[int]:
    """Hewitt & Liang's control task: each type (here the word pair) gets one random label,
    drawn from the empirical label distribution, the same wherever the type occurs."""
    rng = random.Random(f"control|{seed}")
    pool = list(labels)
    assigned: dict[Hashable, int] = {}
    for t in types:
        if t not in assigned:
            assigned[t] = rng.choice(pool)
    return [assigned[t] for t in types]


def held_out(groups: Sequence[int], test_fraction: float, seed: int = 0) -> set[int]:
    """The held-out prompts: ``test_fraction`` of them (at least one), leaving at least two
    to cross-validate the layer choice."""
    from cotlens.errors import CotlensError

    ids = sorted(set(groups))
    if len(ids) < 3:
        raise CotlensError(
            f"relation probing found word pairs in {len(ids)} prompt(s); it needs at least 3 "
            "(two to cross-validate the layer choice, one held out)",
            "use more prompts (circuits.prompts.n_per_cell)",
        )
    random.Random(seed).shuffle(ids)
    n_test = min(len(ids) - 2, max(1, round(test_fraction * len(ids))))
    return set(ids[:n_test])


def group_folds(groups: Sequence[int], k: int, seed: int = 0) -> list[set[int]]:
    """``k`` disjoint sets of group ids (prompts) covering every group once."""
    ids = sorted(set(groups))
    random.Random(f"folds|{seed}").shuffle(ids)
    k = max(2, min(k, len(ids)))
    return [set(ids[i::k]) for i in range(k)]


@dataclass(frozen=True)
class LayerScores:
    layer: int
    task: str  # relation | control
    train: float  # fit and scored on every selection prompt
    cv: float  # grouped k-fold over the selection prompts (what picks the layer)
    test: float  # the held-out prompts, never used to pick


def probe_layers(
    x: torch.Tensor,
    y: torch.Tensor,
    y_control: torch.Tensor,
    groups: Sequence[int],
    test_groups: set[int],
    folds: int = 5,
    seed: int = 0,
    l2: float = 1e-3,
    layer_done: Callable[[], None] | None = None,
) -> tuple[list[LayerScores], int]:
    """Probe every layer of ``x`` [N, L, F] on the relation labels and on the control labels.
    Returns the scores and the layer picked by relation cross-validation accuracy (the
    test prompts play no part in the pick)."""
    g = torch.tensor(list(groups))
    test = torch.tensor([int(i) in test_groups for i in groups])
    sel_groups = [int(i) for i in groups if int(i) not in test_groups]
    if len(set(sel_groups)) < 2:
        raise ValueError("cross-validation needs at least two selection prompts")
    vals = [torch.tensor([int(i) in held for i in g]) & ~test for held in group_folds(sel_groups, folds, seed)]
    out: list[LayerScores] = []
    for layer in range(x.shape[1]):
        xl = x[:, layer]
        for task, labels in (("relation", y), ("control", y_control)):
            correct, total = 0.0, 0
            for val in vals:
                fit = ~test & ~val
                _, acc = fit_probe(xl[fit], labels[fit], xl[val], labels[val], l2)
                correct += acc * int(val.sum())
                total += int(val.sum())
            train, acc_test = fit_probe(xl[~test], labels[~test], xl[test], labels[test], l2)
            out.append(LayerScores(layer, task, train, correct / max(1, total), acc_test))
        if layer_done is not None:
            layer_done()
    relation = [s for s in out if s.task == "relation"]
    best = max(relation, key=lambda s: (s.cv, -s.layer)).layer  # ties: the earliest layer
    return out, best
