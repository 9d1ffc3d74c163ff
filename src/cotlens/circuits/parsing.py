"""Parse a generated response into CoT steps and a True/False answer, and score them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

ANSWER_RE = re.compile(r"answer is\s+(true|false)\b", re.IGNORECASE)
# Text after these marks belongs to a new exemplar the model started inventing.
DELIMITERS = ("###", "\n\n")
_SENT_RE = re.compile(r"[^.!?\n]+[.!?]")


@dataclass(frozen=True)
class Parsed:
    answer: str | None  # "True" | "False" | None
    steps: tuple[str, ...]
    step_spans: tuple[tuple[int, int], ...]  # char spans of the steps in the text
    answer_span: tuple[int, int] | None  # char span of the answer word


def cut_point(text: str) -> int:
    """Where the model's own response ends: the first delimiter, else the whole text."""
    ends = [i for d in DELIMITERS if (i := text.find(d)) >= 0]
    return min(ends) if ends else len(text)


def parse_response(text: str) -> Parsed:
    """Steps are the sentences before the answer sentence ("So the answer is X.")."""
    body = text[: cut_point(text)]
    m = ANSWER_RE.search(body)
    answer = m.group(1).capitalize() if m else None
    cot_end = body.rfind(".", 0, m.start()) + 1 if m else len(body)
    if m and cot_end <= 0:
        cot_end = 0
    steps, spans = [], []
    for s in _SENT_RE.finditer(body, 0, cot_end):
        sent = s.group(0).strip()
        if sent:
            start = s.start() + (len(s.group(0)) - len(s.group(0).lstrip()))
            steps.append(sent)
            spans.append((start, s.end()))
    answer_span = (m.start(1), m.end(1)) if m else None
    return Parsed(answer, tuple(steps), tuple(spans), answer_span)


def normalise(step: str) -> str:
    return " ".join(step.lower().replace(".", " ").split())


def score_steps(steps: Sequence[str], gold: Sequence[str]) -> list[bool]:
    """Step i is correct when it equals gold step i (case and spacing aside)."""
    return [i < len(gold) and normalise(s) == normalise(gold[i]) for i, s in enumerate(steps)]


def is_answer_stop(text: str) -> bool:
    """True once the response holds a complete answer sentence or a delimiter."""
    body = text[: cut_point(text)]
    if len(body) < len(text):
        return True
    m = ANSWER_RE.search(body)
    return m is not None and (m.end() < len(body))


def char_to_token(char_ends: Sequence[int], char_index: int) -> int:
    """Index of the token covering ``char_index`` given cumulative decoded lengths."""
    for j, end in enumerate(char_ends):
        if end > char_index:
            return j
    return len(char_ends) - 1
