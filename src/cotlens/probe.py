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
from collections.abc import Sequence
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
            out.append(RelationExample(prompt_id, sa, sb, lab))
    unrelated = [(a, b) for a in words for b in words if a != b and (a, b) not in rules and (b, a) not in rules]
    rng = random.Random(f"{seed}|{prompt_id}")
    n_rel = sum(1 for e in out if e.label == 0)
    for a, b in rng.sample(unrelated, min(len(unrelated), max(1, n_rel))):
        sa, sb = _first_span(a, question), _first_span(b, question)
        if sa and sb:
            out.append(RelationExample(prompt_id, sa, sb, 2))
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
    """Multinomial logistic regression (standardised features, L2, LBFGS) -> (train acc, test acc)."""
    mu, sd = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    xt, xs = (x_train - mu) / sd, (x_test - mu) / sd
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
