"""Digit confidence under teacher forcing (Gambardella et al., ACL 2024).

For every digit place of an answer we read the model's probability of the correct digit
at that place, given the prompt and the correct text before it, from one batched forward.

Tokenizers differ: Llama/Qwen/Gemma write one digit per token (sometimes after a lone
space token), GPT-2-style BPE merges digits ("1234" -> "12", "34"). Each digit is mapped
to the token that contains it. If the digit is that token's first character, the
probability is the marginal over all vocabulary tokens whose text starts with the digit.
If characters of the same token precede it (a merged token), those characters are fixed
by the teacher-forced prefix, and the probability is conditional on them:

    P(d) = sum(p(v) : text(v) starts with prefix + d) / sum(p(v) : text(v) starts with prefix, longer)

A token's text is its surface form inside a sequence: decode([anchor, v]) minus decode([anchor]).

Monte Carlo dropout (the paper's estimator, an option): dropout with rate p is applied to the
output of every attention block and every FFN block (the ``attn_out`` and ``ffn_module``
modules of the adapter table) at inference, also for models trained without dropout; S
passes, the paired settings of a problem under the same masks. It perturbs the model it
measures, so the stage also stores the model's own softmax for every item and the figures
check the estimator against it (``cotlens.digits.analysis.estimator_check``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from cotlens.core.batch import PrefixCache, logits_at, pad
from cotlens.core.hooks import output_hooks
from cotlens.errors import CotlensError
from cotlens.models.adapters import AdaptedModel, Adapter, get, layers
from cotlens.models.checks import TOL, Check, _cmp

if TYPE_CHECKING:
    from cotlens.models.loading import Loaded

DIGITS = "0123456789"


@dataclass
class VocabText:
    """Surface text of every token id, with cached prefix lookups."""

    texts: list[str]
    _cache: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def from_tokenizer(cls, tok: object, anchor_text: str = "=") -> VocabText:
        anchor = tok(anchor_text, add_special_tokens=False)["input_ids"][-1]  # type: ignore[operator]
        base = tok.decode([anchor])  # type: ignore[attr-defined]
        n = len(tok)  # type: ignore[arg-type]
        pairs = tok.batch_decode([[anchor, v] for v in range(n)])  # type: ignore[attr-defined]
        return cls([p[len(base) :] if p.startswith(base) else p for p in pairs])

    def extending(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """(token ids whose text starts with ``prefix`` and is longer, their next digit or -1)."""
        if prefix not in self._cache:
            ids, nxt = [], []
            k = len(prefix)
            for v, t in enumerate(self.texts):
                if len(t) > k and t.startswith(prefix):
                    ids.append(v)
                    nxt.append(DIGITS.find(t[k]))
            self._cache[prefix] = (np.asarray(ids, dtype=np.int64), np.asarray(nxt, dtype=np.int64))
        return self._cache[prefix]


@dataclass(frozen=True)
class Place:
    """Where one digit of the answer is read."""

    digit: int  # the correct digit
    index: int  # 0 = most significant
    pos: int  # sequence position whose next-token distribution is read
    inside: str  # characters of the same token before the digit (fixed by teacher forcing)


def align(tok: object, vt: VocabText, prompt: str, answer: str) -> tuple[list[int], list[Place]]:
    """Token ids of prompt + answer and, for each digit of the answer, where to read it."""
    text = prompt + answer
    enc = tok(text, return_offsets_mapping=True)  # type: ignore[operator]
    ids, offs = list(enc["input_ids"]), list(enc["offset_mapping"])
    places: list[Place] = []
    digit_chars = [i for i in range(len(prompt), len(text)) if text[i].isdigit()]
    for k, ci in enumerate(digit_chars):
        j = next((j for j, (s, e) in enumerate(offs) if s <= ci < e and e > s), None)
        if j is None or j == 0:
            raise CotlensError(f"cannot find the token of answer digit {k} in {text[-40:]!r}")
        surface = vt.texts[ids[j]]
        end = offs[j][1]
        cut = len(surface) - (end - ci)
        if cut < 0 or not surface[cut:].startswith(text[ci]):
            raise CotlensError(f"token {surface!r} does not align with {text[ci:end]!r}", "report this tokenizer")
        places.append(Place(int(text[ci]), k, j - 1, surface[:cut]))
    return ids, places


def digit_distribution(probs: torch.Tensor, vt: VocabText, inside: str) -> np.ndarray:
    """[10] probabilities of each digit at a place, from a [V] next-token distribution."""
    ids, nxt = vt.extending(inside)
    p = probs[torch.from_numpy(ids)].double().cpu().numpy()
    mass = np.bincount(nxt[nxt >= 0], weights=p[nxt >= 0], minlength=10)[:10]
    denom = p.sum() if inside else 1.0
    return mass / denom if denom > 0 else mass


def mc_dropout(
    model: nn.Module, ad: Adapter, p: float, seed: int, groups: torch.Tensor | None = None
) -> contextlib.AbstractContextManager[None]:
    """Dropout with rate ``p`` on every attention and FFN block output while active.

    The masks come from a generator seeded with ``seed`` (one pass = one seed), and rows of
    the batch with the same ``groups`` id share their masks position by position: the paired
    settings of one problem (correct vs own higher digits) see the same dropped units
    (common random numbers), so their difference is not mask noise. ``p`` 0 is exact."""
    gen = torch.Generator().manual_seed(int(seed))

    def drop(_m: nn.Module, _a: object, o: object) -> object:
        x = o[0] if isinstance(o, tuple) else o
        assert isinstance(x, torch.Tensor)
        shape = x.shape
        if groups is not None and x.dim() == 2 and shape[0] != len(groups):
            x = x.view(len(groups), -1, shape[-1])  # a flat FFN (OPT): [batch * seq, d]
        g = groups if groups is not None else torch.arange(x.shape[0])
        keep = torch.rand((int(g.max()) + 1, *x.shape[1:]), generator=gen) >= p
        y = (x * keep[g].to(device=x.device, dtype=x.dtype) / (1.0 - p)).view(shape)
        return (y, *o[1:]) if isinstance(o, tuple) else y

    return output_hooks(
        (get(block, path), drop) for block in layers(model, ad) for path in (ad.attn_out, ad.ffn_module)
    )


Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def score(
    forward: Forward,
    vt: VocabText,
    seqs: Sequence[Sequence[int]],
    places: Sequence[Sequence[Place]],
    pad_id: int,
    device: torch.device,
) -> list[list[np.ndarray]]:
    """One batched forward; per sequence, per place, the [10] digit distribution.

    ``forward(ids, mask, pos)`` returns next-token probabilities [B, P, V] at ``pos``.
    """
    ids, mask = pad(seqs, pad_id, device, left=False)
    probs = forward(ids, mask, _positions(places).to(device))
    return [[digit_distribution(probs[b, k], vt, pl.inside) for k, pl in enumerate(p)] for b, p in enumerate(places)]


def _positions(places: Sequence[Sequence[Place]]) -> torch.Tensor:
    """[rows, P] read positions, each row padded with its last one."""
    npos = max(len(p) for p in places)
    return torch.tensor([[pl.pos for pl in p] + [p[-1].pos] * (npos - len(p)) for p in places], dtype=torch.long)


def with_digit(answer: str, k: int, digit: int) -> str:
    """``answer`` with its k-th digit character (0 = most significant) replaced by ``digit``."""
    idx = [i for i, c in enumerate(answer) if c.isdigit()]
    i = idx[k]
    return answer[:i] + str(digit) + answer[i + 1 :]


def own_digits(
    read: Reader,
    tok: object,
    vt: VocabText,
    prompts: Sequence[str],
    answers: Sequence[str],
) -> list[str]:
    """The model's own higher-order digits, then the correct last digit (the paper's
    unconditioned setting, read from the same product sequence).

    Place by place, the most probable digit (among digits, from the same marginal that
    :func:`score` reads) given the prompt and the model's own earlier digits replaces the
    correct one; the answer keeps the correct number of digits, and its last digit stays
    the correct one, whose probability is then read at the same place as in the
    conditioned setting. Deterministic (no dropout): the estimator is applied afterwards.
    ``read`` (:func:`reader`) reads row ``i`` as owner ``i`` (its prompt's cached prefix).
    """
    cur = list(answers)
    n = [sum(c.isdigit() for c in a) for a in answers]
    done = [0] * len(answers)  # places before done[i] hold the model's own digit
    while True:
        rows = [i for i, L in enumerate(n) if done[i] < L - 1]
        if not rows:
            return cur
        seqs, places = zip(*(align(tok, vt, prompts[i], cur[i]) for i in rows), strict=True)
        dists = read(rows, seqs, places)
        for i, d, pl in zip(rows, dists, places, strict=True):
            # one forward settles every place up to the first one where the model's digit
            # differs from the sequence's: the places after it are read again next round
            for k in range(done[i], n[i] - 1):
                best = int(np.argmax(d[k]))
                done[i] = k + 1
                if best != pl[k].digit:
                    cur[i] = with_digit(cur[i], k, best)
                    break


Reader = Callable[[Sequence[int], Sequence[Sequence[int]], Sequence[Sequence[Place]]], list[list[np.ndarray]]]


def prompt_prefix(ids: Sequence[int], places: Sequence[Place]) -> list[int]:
    """The tokens of a problem's sequence before its first read position: what every
    sequence of the problem (each setting, each round of :func:`own_digits`) shares."""
    return list(ids[: min(p.pos for p in places)])


def reader(
    forward: Forward, vt: VocabText, pad_id: int, device: torch.device, cache: PrefixCache | None = None
) -> Reader:
    """``read(owners, seqs, places)``: per sequence, per place, the [10] digit distribution
    (:func:`score`). With ``cache`` (each owner's prompt, :class:`cotlens.core.batch.PrefixCache`)
    a sequence that starts with its owner's prefix runs only its own tokens; any other goes
    through the whole-sequence ``forward``. Both give the model's logits (self-check
    ``readout_padded``)."""

    def read(
        owners: Sequence[int], seqs: Sequence[Sequence[int]], places: Sequence[Sequence[Place]]
    ) -> list[list[np.ndarray]]:
        out: list[list[np.ndarray]] = [[] for _ in seqs]
        cached = (
            []
            if cache is None
            else [
                i
                for i, (o, s, p) in enumerate(zip(owners, seqs, places, strict=True))
                if cache.owns(o, s) and min(pl.pos for pl in p) >= len(cache.prefixes[o])
            ]
        )
        rest = sorted(set(range(len(seqs))) - set(cached))
        if cached:
            assert cache is not None
            pos = _positions([places[i] for i in cached])
            with torch.inference_mode():
                logits = cache.logits_at([owners[i] for i in cached], [seqs[i] for i in cached], pos.to(device))
                probs = torch.softmax(logits.float(), dim=-1)
            for b, i in enumerate(cached):
                out[i] = [digit_distribution(probs[b, k], vt, pl.inside) for k, pl in enumerate(places[i])]
        if rest:
            got = score(forward, vt, [seqs[i] for i in rest], [places[i] for i in rest], pad_id, device)
            for i, d in zip(rest, got, strict=True):
                out[i] = d
        return out

    return read


def position_forward(lm: Loaded) -> Forward:
    """(ids, mask, pos) -> next-token probabilities at pos, without full-vocab logits elsewhere."""

    @torch.inference_mode()
    def forward(ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits_at(lm.model, lm.adapter, ids, mask, pos).float(), dim=-1)

    return forward


@torch.no_grad()
def check_readout_padded(mh: AdaptedModel, ids: torch.Tensor, tol: float = TOL) -> Check:
    """Study 3's read-outs vs the model's own logits of each row alone: :func:`cotlens.core.batch.logits_at`
    on right-padded rows of different lengths at chosen positions, and
    :class:`cotlens.core.batch.PrefixCache` (prefixes of different lengths, left-padded, cached;
    then sequences of the same owner that differ after it, owners repeated and out of order)."""
    model, ad = mh.model, mh.adapter
    dev = ids.device
    rows = [ids[0].tolist(), ids[1, : max(4, ids.shape[1] // 2)].tolist()]
    padded, mask = pad(rows, 0, dev, left=False)
    pos = torch.tensor([[1, len(rows[0]) - 1], [1, len(rows[1]) - 1]], device=dev)
    got = logits_at(model, ad, padded, mask, pos)

    def alone(seq: Sequence[int], at: torch.Tensor) -> torch.Tensor:
        return model(input_ids=torch.tensor([list(seq)], device=dev)).logits[0, at]

    what = f"logits_at on right-padded rows ({len(rows[0])} and {len(rows[1])} tokens)"
    first = _cmp(
        "readout_padded", got, torch.stack([alone(r, p) for r, p in zip(rows, pos, strict=True)]), what, tol=tol
    )
    cut = [len(rows[0]) // 2, 2]
    cache = PrefixCache(model, ad, [r[:k] for r, k in zip(rows, cut, strict=True)], 0, dev)
    other = list(rows[1])
    other[cut[1] + 1] = rows[0][cut[1] + 1]  # the same prefix, another token after it
    seqs, owners = [rows[1], rows[0], other], [1, 0, 1]
    at = torch.tensor(
        [[cut[1], len(rows[1]) - 1], [cut[0], len(rows[0]) - 1], [cut[1] + 1, len(other) - 1]], device=dev
    )
    got = cache.logits_at(owners, seqs, at)
    want = torch.stack([alone(q, p) for q, p in zip(seqs, at, strict=True)])
    what = f"PrefixCache reads after cached prefixes of {cut[0]} and {cut[1]} tokens"
    second = _cmp("readout_padded", got, want, what, tol=tol)
    if not first.ok or not second.ok:
        return first if not first.ok else second
    return first if first.rel >= second.rel else second


def confidence_batch(
    lm: Loaded,
    vt: VocabText,
    fwd: Forward,
    pad: int,
    batch: Sequence[Mapping[str, Any]],
    settings: Sequence[str],
    estimator: str,
    mc: Mapping[str, Any],
    seed: int,
) -> tuple[list[dict[str, Any]], int]:
    """Digit confidence of one batch of problems (of one cell), in every setting: the rows of
    the confidence table (``digits.tables.DIGITS``) and the batched forwards run. Each
    problem's prompt is run once (``PrefixCache``); the model's own softmax is always read,
    and MC dropout (``estimator: mc_dropout``, ``mc``: p and samples) on the same items,
    the paired settings of a problem sharing their dropout masks."""
    seqs, places, meta, problem = [], [], [], []
    # each problem's prompt is run once: every setting and every round of own digits
    # reads only its answer tokens after it (self-check readout_padded)
    prefix = [prompt_prefix(*align(lm.tokenizer, vt, r["prompt"], r["answer"])) for r in batch]
    read = reader(fwd, vt, pad, lm.device, PrefixCache(lm.model, lm.adapter, prefix, pad, lm.device))
    own = (
        own_digits(read, lm.tokenizer, vt, [r["prompt"] for r in batch], [r["answer"] for r in batch])
        if "unconditioned" in settings
        else [None] * len(batch)
    )
    for i, (r, mine) in enumerate(zip(batch, own, strict=True)):
        texts = {
            "conditioned": (r["prompt"], r["answer"]),
            "unconditioned": (r["prompt"], mine),
            "direct": (r["direct_prompt"], r["direct_answer"]),
        }
        for setting in settings:
            ids, pl = align(lm.tokenizer, vt, *texts[setting])
            seqs.append(ids)
            places.append(pl)
            meta.append((r, setting))
            problem.append(i)  # the paired settings of a problem share their dropout masks
    # the model's own softmax, always: the claims' default estimator, and what MC
    # dropout is checked against on the same items
    plain = read(problem, seqs, places)
    n_forwards = 1
    if estimator == "mc_dropout":
        draws = []
        for k in range(int(mc["samples"])):
            with mc_dropout(lm.model, lm.adapter, float(mc["p"]), seed * 1000 + k, torch.tensor(problem)):
                draws.append(score(fwd, vt, seqs, places, pad, lm.device))
            n_forwards += 1
        dists = [[np.stack([d[i][j] for d in draws]) for j in range(len(places[i]))] for i in range(len(seqs))]
    else:
        dists = [[d[None] for d in row] for row in plain]
    rows: list[dict[str, Any]] = []
    for (r, setting), pl, dl, pn in zip(meta, places, dists, plain, strict=True):
        answer_places = len(pl)
        truth = [int(c) for c in (r["direct_answer"] if setting == "direct" else r["answer"]) if c.isdigit()]
        written = [p.digit for p in pl]  # the digits in the scored sequence
        for place, dist, own_p in zip(pl, dl, pn, strict=True):
            d = truth[place.index]  # unconditioned: the earlier places hold the model's own digits
            pc = dist[:, d]
            ok = written[: place.index] == truth[: place.index]
            rows.append(
                {
                    "problem_id": r["problem_id"],
                    "n": r["n"],
                    "m": r["m"],
                    "setting": setting,
                    "place": place.index,
                    "n_places": answer_places,
                    "digit": d,
                    "prefix_correct": ok,
                    "p_correct": float(pc.mean()),
                    "p_std": float(pc.std()),
                    "argmax_digit": int(dist.mean(0).argmax()),
                    "p_plain": float(own_p[d]),
                    "argmax_plain": int(own_p.argmax()),
                    "p_max_plain": float(own_p.max()),
                }
            )
    return rows, n_forwards
