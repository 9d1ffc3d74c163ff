"""The concept judge's decision rule and its agreement report (no model: P(yes) is scripted)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from cotlens.judge import CONCEPTS, Judge, agreement, question
from cotlens.stats import cohen_kappa


class _Tok:
    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [len(text)]}


class Scripted(Judge):
    """P(yes) per concept from a table keyed by the first token."""

    def __init__(self, table: dict[str, dict[str, float]], cache: Path) -> None:
        super().__init__(None, _Tok(), "scripted", cache)
        self.table = table

    def p_yes(self, q: str) -> float:
        for first, by_concept in self.table.items():
            for c, p in by_concept.items():
                if q == question([first, " x"], c):
                    return p
        return 0.1


def test_label_is_the_most_likely_concept_not_the_first_yes(tmp_path: Path) -> None:
    j = Scripted({"+": {"add": 0.6, "mul": 0.9}, "so": {"connective": 0.4}}, tmp_path / "c.jsonl")
    assert list(CONCEPTS)[0] == "add"  # asked first, and said yes to, but mul is likelier
    assert j.label(["+", " x"]) == "mul"
    assert j.label(["so", " x"]) is None  # nothing above one half
    assert set(j.scores(["+", " x"])) == set(CONCEPTS)


def test_question_frames_the_tokens(tmp_path: Path) -> None:
    q = question([" plus", " ", "+"], "add")
    assert q.endswith("Words: ' plus', '+'\nTopic: addition or the plus sign")  # blank tokens dropped
    assert "Answer: Yes" in q and "Answer: No" in q  # the two worked examples


def test_agreement_counts_and_kappa(tmp_path: Path) -> None:
    j = Scripted({"+": {"add": 0.9}, "*": {"mul": 0.9}, "so": {}}, tmp_path / "c.jsonl")
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
