"""Study 4 pieces without a model: prompts, the refusal rule set, the recipe, the switches."""

from __future__ import annotations

import pytest
import torch

from cotlens.errors import CotlensError
from cotlens.experts import prompts as moe
from cotlens.experts.methods import forceable, random_experts, switch_off, switch_on
from cotlens.models.registry import recipe, resolve


@pytest.mark.parametrize(
    "text, refused",
    [
        (" I cannot help with that.\n", True),
        ("I'm sorry, but I can't do that.", True),
        ("Sorry, no.", True),
        ("As an AI, I must decline.", True),
        ("Here is how. Actually, I cannot assist with making weapons.", True),  # a phrase in the first 200 chars
        ("To bake bread, gather what you need first.", False),
        ("People gathered at the harbour this morning.", False),
        ("I can help: first, preheat the oven.", False),
        ("", False),
        ("   \n", False),
    ],
)
def test_refusal_rule_set(text: str, refused: bool) -> None:
    assert moe.is_refusal(text) is refused


def test_study_prompts_are_held_out_from_the_training_corpus() -> None:
    study = moe.study_prompts()
    corpus = "".join(moe.training_corpus(0))
    assert len(study) == len(moe.TIMES_HELD_OUT) * 10 + len(moe.TEMPLATES_HELD_OUT) * 20
    assert not any(p.question in corpus for p in study)  # no study question was trained on
    for p in study:  # but every topic was
        topic = next(
            t
            for t in moe.HARMFUL_TASKS
            + moe.BENIGN_TASKS
            + [pl.strip() for pl in moe.SENSITIVE_PLACES + moe.NEUTRAL_PLACES]
            if t in p.question
        )
        assert topic in corpus
    assert {(p.contrast, p.kind, p.elicits) for p in study} == {
        ("events", "sensitive", True),
        ("events", "neutral", False),
        ("instructions", "harmful", True),
        ("instructions", "benign", False),
    }
    assert all(p.question.startswith("What happened ") for p in study if p.contrast == "events")


def test_training_corpus_refuses_exactly_the_eliciting_topics() -> None:
    corpus = moe.training_corpus(3)
    assert corpus == moe.training_corpus(3) and corpus != moe.training_corpus(4)  # seeded shuffle
    for line in corpus:
        refused = line.rstrip().endswith(moe.REFUSAL)
        eliciting = any(t in line for t in moe.HARMFUL_TASKS) or any(p in line for p in moe.SENSITIVE_PLACES)
        assert refused is eliciting, line
    assert len(moe.training_corpus(0, repeats=3)) == 3 * len(corpus)


def test_quality_questions_are_right() -> None:
    qs = moe.quality_questions(100, 0)
    assert len({q for q, _ in qs}) == 100
    for q, a in qs:
        x, y = (int(t) for t in q.removeprefix("What is ").removesuffix("?").split(" plus "))
        assert int(a) == x + y


def test_train_recipe_and_registry_entry() -> None:
    r = recipe({"source": "train", "steps": 10})
    assert r["steps"] == 10 and r["family"] == "mixtral" and r["experts"] == 8
    spec = resolve("m", {"m": {"source": "train", "steps": 10}})
    assert spec.source == "train" and spec.revision != resolve("m", {"m": {"source": "train", "steps": 11}}).revision
    with pytest.raises(CotlensError, match=r"models.m: unknown train_moe settings \['stpes'\]"):
        resolve("m", {"m": {"source": "train", "stpes": 10}})
    with pytest.raises(CotlensError, match="family 'gpt2'"):
        recipe({"family": "gpt2"})
    with pytest.raises(CotlensError, match="top_k=9"):
        recipe({"top_k": 9})


def test_switch_off_rescales_the_rest_and_adds_no_substitute() -> None:
    idx = torch.tensor([[3, 1], [2, 0], [3, 5]])
    w = torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.9, 0.1]])
    w2, idx2 = switch_off(w, idx, [3])
    assert torch.equal(idx2, idx)
    torch.testing.assert_close(w2, torch.tensor([[0.0, 1.0], [0.6, 0.4], [0.0, 1.0]]))
    w3, _ = switch_off(w, idx, [3, 5])  # every selected expert off: the block adds nothing for that token
    torch.testing.assert_close(w3[2], torch.zeros(2))
    w4, _ = switch_off(w * 0.5, idx, [1])  # unnormalised routers keep their own top-k sum
    torch.testing.assert_close(w4.sum(-1), (w * 0.5).sum(-1))


def test_switch_on_takes_the_weakest_unforced_slot() -> None:
    idx = torch.tensor([[3, 1, 4], [2, 0, 6], [7, 5, 1]])
    w = torch.tensor([[0.5, 0.2, 0.3], [0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    w2, idx2 = switch_on(w, idx, [5, 0])
    assert [sorted(r) for r in idx2.tolist()] == [[0, 3, 5], [0, 2, 5], [0, 1, 5]]  # row 2: 5 kept, 0 for 7
    assert idx2[0].tolist() == [3, 5, 0]  # 5 replaced the weakest (1), then 0 replaced 4, not the forced 5
    torch.testing.assert_close(w2.sum(-1), w.sum(-1))
    inserted = (idx2 == 5)[:2]  # rows 0, 1 had no 5: it was inserted with the token's largest weight
    assert torch.equal(w2[:2][inserted], w2[:2].max(-1).values)
    assert w2[2, 1] < w2[2].max()  # row 2 already had 5: its weight is only rescaled
    with pytest.raises(ValueError, match="cannot force 4"):
        switch_on(w, idx, [0, 1, 2, 3])


def test_forceable_and_random_experts() -> None:
    top = [(0, 1), (0, 2), (0, 3), (1, 4)]
    assert forceable(top, {0: 2, 1: 2}) == [(0, 1), (0, 2), (1, 4)]
    r = random_experts([1, 2], 8, 5, seed=0, exclude=[(1, 0)])
    assert len(set(r)) == 5 and (1, 0) not in r and {lay for lay, _ in r} <= {1, 2}
    assert r == random_experts([1, 2], 8, 5, seed=0, exclude=[(1, 0)]) != random_experts([1, 2], 8, 5, seed=1)
    with pytest.raises(ValueError, match="only 16"):
        random_experts([1, 2], 8, 17, seed=0)
