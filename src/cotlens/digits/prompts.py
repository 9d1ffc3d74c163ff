"""Seeded n-digit x m-digit multiplication problems with k-shot prompts (no CoT).

Two templates, each with a k-shot prefix of exemplars from the same (n, m) cell:
- ``template`` (default ``"{a} * {b} = {c}"``): the full product; the answer is the
  text after the ``{c}`` marker's prefix, e.g. ``" 408"``;
- ``direct_template`` (default ``"{a} * {b} mod 10 = {d}"``): the last digit ``d``
  asked for directly after ``=`` (the paper's "last digit is a 1x1-digit problem").
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass

from cotlens.errors import CotlensError


@dataclass(frozen=True)
class MultConfig:
    seed: int = 0
    n_digits: tuple[int, ...] = (1, 2, 3, 4, 5)
    m_digits: tuple[int, ...] = (1, 2, 3, 4, 5)
    n_per_cell: int = 20
    n_shots: int = 4
    template: str = "{a} * {b} = {c}"
    direct_template: str = "{a} * {b} mod 10 = {d}"

    def __post_init__(self) -> None:
        for name in ("n_digits", "m_digits"):
            v = getattr(self, name)
            if not v or any(not 1 <= x <= 12 for x in v):
                raise CotlensError(f"digits.{name} = {list(v)}", "use digit counts between 1 and 12")
        if self.n_per_cell < 1:
            raise CotlensError("digits.prompts.n_per_cell < 1: the problem set is empty", "use n_per_cell >= 1")
        split(self.template, "c", "digits.prompts.template")
        split(self.direct_template, "d", "digits.prompts.direct_template")


def split(template: str, answer: str, key: str) -> tuple[str, str]:
    """Template -> (text up to the answer field, text after it)."""
    marker = "{" + answer + "}"
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise CotlensError(
            f"{key} = {template!r} is not a format string ({e})", "write literal braces as {{ and }}"
        ) from None
    unknown = sorted(set(fields) - {"a", "b", answer})
    if unknown:
        raise CotlensError(
            f"{key} = {template!r} has the unknown field(s) {unknown}",
            f"use only {{a}}, {{b}} and {marker} (write literal braces as {{{{ and }}}})",
        )
    if template.count(marker) != 1 or "{a}" not in template or "{b}" not in template:
        raise CotlensError(f"{key} = {template!r}", f"it needs {{a}}, {{b}} and exactly one {marker}")
    head, tail = template.split(marker)
    if tail.strip():
        raise CotlensError(f"{key} = {template!r} has text after {marker}", f"end the template with {marker}")
    return head, tail


@dataclass(frozen=True)
class Problem:
    n: int
    m: int
    a: int
    b: int
    prompt: str  # k-shot exemplars + query, ending right before the answer text
    answer: str  # e.g. " 408": the text the model should write next
    direct_prompt: str
    direct_answer: str  # e.g. " 8"

    @property
    def product(self) -> int:
        return self.a * self.b


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)


def render(template: str, answer: str, a: int, b: int) -> tuple[str, str]:
    """(query text, answer text) for one problem."""
    head, _ = split(template, answer, "template")
    value = a * b if answer == "c" else (a * b) % 10
    q = head.format(a=a, b=b)
    full = template.format(a=a, b=b, **{answer: value})
    return q.rstrip(" "), full[len(q.rstrip(" ")) :]


def generate(cfg: MultConfig) -> Iterator[Problem]:
    for n in cfg.n_digits:
        for m in cfg.m_digits:
            rng = random.Random(f"{cfg.seed}|{n}|{m}")
            for _ in range(cfg.n_per_cell):
                a, b = _number(rng, n), _number(rng, m)
                shots = [(_number(rng, n), _number(rng, m)) for _ in range(cfg.n_shots)]
                out = []
                for tpl, key in ((cfg.template, "c"), (cfg.direct_template, "d")):
                    ex = "".join("".join(render(tpl, key, x, y)) + "\n" for x, y in shots)
                    q, ans = render(tpl, key, a, b)
                    out += [ex + q, ans]
                yield Problem(n, m, a, b, out[0], out[1], out[2], out[3])
