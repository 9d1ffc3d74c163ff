"""The concept judge's decision rule and its agreement report (no model: P(yes) is scripted)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cotlens.core.judge import CONCEPTS, LETTERS, Judge, agreement, question
from cotlens.core.stats import cohen_kappa


class _Tok:
    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [len(text)]}


class Scripted(Judge):
    """P(option) per neuron from a table keyed by the first token: {first: {concept: p}}."""

    def __init__(self, table: dict[str, dict[str, float]], cache: Path) -> None:
        super().__init__(None, _Tok(), "scripted", cache)
        self.table = table

    def option_probs(self, q: str) -> list[float]:
        for first, by_concept in self.table.items():
            if q == question([first, " x"]):
                probs = [by_concept.get(c, 0.0) for c in CONCEPTS]
                return probs + [max(0.0, 1.0 - sum(probs))]  # H: none of these
        return [0.0] * len(CONCEPTS) + [1.0]


def test_label_is_the_likeliest_option_and_none_is_a_choice(tmp_path: Path) -> None:
    j = Scripted({"+": {"add": 0.3, "mul": 0.5}, "so": {"connective": 0.2, "add": 0.1}}, tmp_path / "c.jsonl")
    assert j.label(["+", " x"]) == "mul"
    assert j.label(["so", " x"]) is None  # "none of these" (0.7) is likeliest
    assert len(LETTERS) == len(CONCEPTS) + 1


def test_question_frames_the_tokens() -> None:
    q = question([" plus", " ", "+"])
    assert q.endswith("Words: ' plus', '+'\nTopic:")  # blank tokens dropped
    assert all(f"{x}) " in q for x in LETTERS) and "H) none of these" in q
    answers = [line.split(": ")[1] for line in q.splitlines() if line.startswith("Topic: ")]
    assert answers == ["A", "H", "D", "H"]  # worked examples: two concepts, two "none"


def test_agreement_counts_and_kappa(tmp_path: Path) -> None:
    j = Scripted({"+": {"add": 0.9}, "*": {"mul": 0.9}}, tmp_path / "c.jsonl")
    cands: Sequence[tuple[str, Sequence[str], Any]] = [
        ("L1N1", ["+", " x"], "add"),
        ("L1N2", ["*", " x"], "mul"),
        ("L1N3", ["so", " x"], "connective"),  # the judge says no concept
        ("L1N4", ["so", " x"], None),
    ]
    r = agreement(cands, j)
    assert r["n"] == 4 and r["agree"] == pytest.approx(0.75)
    assert r["confusion"] == {"add": {"add": 1}, "mul": {"mul": 1}, "connective": {"none": 1}, "none": {"none": 1}}
    assert r["disagreements"] == [{"neuron": "L1N3", "tokens": ["so", " x"], "lexicon": "connective", "judge": "none"}]
    assert r["lexicon_concepts"] == 3 and r["judge_concepts"] == 2
    assert r["kappa"] == pytest.approx(
        cohen_kappa(["add", "mul", "connective", "none"], ["add", "mul", "none", "none"])
    )


def test_cohen_kappa() -> None:
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)  # chance level
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    assert cohen_kappa(["a", "a"], ["a", "a"]) == 1.0


def test_old_cache_lines_without_probabilities_still_read(tmp_path: Path) -> None:
    cache = tmp_path / "c.jsonl"
    j = Judge(None, _Tok(), "k", cache)
    cache.write_text(json.dumps({"key": j._key("q1"), "yes": True}) + "\n" + '{"key": "cut')
    again = Judge(None, _Tok(), "k", cache)
    assert again.p_yes("q1") == 1.0 and again.yes("q1") and again.asked == 0


def test_multiple_choice_answers_are_cached_beside_yes_no(tmp_path: Path) -> None:
    cache = tmp_path / "c.jsonl"
    j = Judge(None, _Tok(), "k", cache)
    probs = [0.1] * 7 + [0.3]
    cache.write_text(json.dumps({"key": j._key("q2"), "probs": probs, "question": "q2"}) + "\n")
    again = Judge(None, _Tok(), "k", cache)
    assert again.option_probs("q2") == probs and again.asked == 0
