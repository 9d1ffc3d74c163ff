"""Clean/corrupt pair construction and relation-probe examples (tokenizer only, no model)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from cotlens.circuits import fewshot
from cotlens.circuits.pairs import Target, balance, build_pairs, gold_samples, make_pair, step_targets
from cotlens.circuits.probe import LABELS, fit_probe, relation_examples
from cotlens.circuits.prompts import GeneratorConfig, generate


def test_step_targets_label_subtasks() -> None:
    got = [(t.word, t.subtask) for t in step_targets("Every wumpus is not a tumpus.", 0, 1)]
    assert got == [("wumpus", "decision"), ("tumpus", "copy")]
    got = [(t.word, t.subtask) for t in step_targets("Wren is a tumpus.", 10, 2)]
    assert got == [("Wren", "copy"), ("tumpus", "induction")]
    assert [t.subtask for t in step_targets("Wren is a wumpus.", 0, 0)] == ["copy", "copy"]
    assert step_targets("Every wumpus is bright.", 5, 1)[1].start == 5 + len("Every wumpus is ")
    assert step_targets("So it goes.", 0, 0) == []


@pytest.fixture(scope="module")
def tok(tiny_model_src: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_src)


def _prompts() -> list[dict]:  # type: ignore[type-arg]
    rows = []
    for i, (ex, _) in enumerate(
        generate(GeneratorConfig(n_per_cell=2, n_shots=0, hops=(2, 3), ontologies=("fictional",)))
    ):
        rows.append(
            {
                "prompt_id": i,
                "facts": list(ex.facts),
                "query": ex.query,
                "gold_cot": list(ex.gold_cot),
                "label": ex.label,
            }
        )
    return rows


def test_pairs_align_and_corrupt_the_latest_occurrence(tok) -> None:  # type: ignore[no-untyped-def]
    prompts = _prompts()
    pairs = list(build_pairs(tok, prompts, gold_samples(prompts)))
    assert {p.subtask for p in pairs} == {"decision", "copy", "induction"}
    assert {p.corrupted_in for p in pairs} == {"cot", "question"}
    for p in pairs:
        assert len(p.clean_ids) == len(p.corrupt_ids)
        diff = [i for i, (a, b) in enumerate(zip(p.clean_ids, p.corrupt_ids, strict=True)) if a != b]
        assert diff and diff[0] == p.corrupt_pos
        assert (p.corrupt_pos < p.question_len) == (p.corrupted_in == "question")
        assert tok.decode([p.clean_tok]).strip() and p.word.startswith(tok.decode([p.clean_tok]).strip())
        assert p.replacement.startswith(tok.decode([p.corrupt_tok]).strip())
        assert (p.word[0] in "aeiou") == (p.replacement[0] in "aeiou")  # same article
        clean, corrupt = tok.decode(p.clean_ids), tok.decode(p.corrupt_ids)
        assert p.replacement in corrupt and p.replacement not in clean
        assert clean.count(p.word) == corrupt.count(p.word) + 1
    cot = [p for p in pairs if p.corrupted_in == "cot"]
    assert all(p.corrupt_pos >= p.question_len for p in cot)


def test_fewshot_pairs_keep_the_exemplars_and_never_corrupt_them(tok) -> None:  # type: ignore[no-untyped-def]
    rows = []
    for i, (ex, shots) in enumerate(
        generate(GeneratorConfig(n_per_cell=2, n_shots=2, hops=(2, 3), ontologies=("fictional",)))
    ):
        rows.append(
            {
                "prompt_id": i,
                "facts": list(ex.facts),
                "query": ex.query,
                "gold_cot": list(ex.gold_cot),
                "label": ex.label,
                "prompt": fewshot.prompt(ex, shots),
            }
        )
    zero = list(build_pairs(tok, rows, gold_samples(rows)))
    few = list(build_pairs(tok, rows, gold_samples(rows), context="fewshot"))
    assert few and len(few) <= len(zero) + 5
    by = {r["prompt_id"]: r for r in rows}
    for p in few:
        shots = by[p.prompt_id]["prompt"][
            : -len(fewshot.question_text(by[p.prompt_id]["facts"], by[p.prompt_id]["query"]))
        ]
        n_ctx = len(tok(shots, add_special_tokens=False)["input_ids"])
        assert len(p.clean_ids) > n_ctx and p.corrupt_pos >= n_ctx - 1  # the exemplars are identical in both
        assert tok.decode(p.clean_ids).startswith(shots.strip()[:40]) or shots.strip()[:40] in tok.decode(p.clean_ids)
        assert p.question_len > n_ctx - 1
    with pytest.raises(ValueError, match=r"pairs context must be one of .*two-shot"):
        list(build_pairs(tok, rows, gold_samples(rows), context="two-shot"))


def test_make_pair_prefers_the_cot_prefix(tok) -> None:  # type: ignore[no-untyped-def]
    q = fewshot.question_text(["Wren is a wumpus.", "Every wumpus is a tumpus."], "Wren is a tumpus")
    completion = "Wren is a wumpus. Every wumpus is a tumpus. Wren is a tumpus."
    start = completion.rindex("tumpus")
    made = make_pair(tok, q, completion, Target(start, "tumpus", "induction"), random.Random(0))
    assert made is not None
    cand, where, *_ = made
    assert where == "cot"
    start_q = completion.index("wumpus")  # first CoT word after the entity: only in the question
    made = make_pair(tok, q, completion, Target(start_q, "wumpus", "copy"), random.Random(0))
    assert made is not None and made[1] == "question"


def test_balance_caps_each_subtask(tok) -> None:  # type: ignore[no-untyped-def]
    prompts = _prompts()
    pairs = list(build_pairs(tok, prompts, gold_samples(prompts)))
    kept = balance(pairs, 2, seed=1)
    assert all(sum(p.subtask == s for p in kept) <= 2 for s in ("decision", "copy", "induction"))
    assert kept == balance(pairs, 2, seed=1)


def test_relation_examples() -> None:
    q = fewshot.question_text(
        ["Wren is a wumpus.", "Every wumpus is a tumpus.", "Every yumpus is not a tumpus.", "Every tumpus is bright."],
        "Wren is bright",
    )
    ex = relation_examples(0, q)
    by = {(q[e.a_char[0] : e.a_char[1]], q[e.b_char[0] : e.b_char[1]]): LABELS[e.label] for e in ex}
    assert by[("wumpus", "tumpus")] == "related"
    assert by[("yumpus", "tumpus")] == "negated"
    assert by[("tumpus", "bright")] == "related"
    assert "unrelated" in by.values()
    assert all(k not in {("wumpus", "bright"), ("bright", "wumpus")} or v == "unrelated" for k, v in by.items())


def test_fit_probe_learns_a_separable_problem() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(90) % 3
    x = torch.randn(90, 10, generator=g) * 0.1
    x[torch.arange(90), y] += 2.0
    tr, te = fit_probe(x[:60], y[:60], x[60:], y[60:])
    assert tr == 1.0 and te > 0.9
    tr, te = fit_probe(torch.randn(60, 10, generator=g), y[:60], torch.randn(30, 10, generator=g), y[60:])
    assert te < 0.7  # noise does not generalise


def test_fit_probe_in_the_row_space_is_the_full_problem() -> None:
    """More features than examples: the row-space fit gives the predictions of the full
    L2 logistic regression (solved here directly, to convergence), at a large feature scale."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 50, generator=g) * 5.0 + 3.0  # 50 features > 40 training rows: the reduced path
    y = torch.randint(0, 3, (60,), generator=g)
    x[:, :3] += 40.0 * torch.nn.functional.one_hot(y, 3)
    xtr, ytr, xte, yte = x[:40], y[:40], x[40:], y[40:]
    tr, te = fit_probe(xtr, ytr, xte, yte, l2=0.05, steps=500)
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    w = torch.zeros(50, 3, requires_grad=True)
    c = torch.zeros(3, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], max_iter=2000, tolerance_grad=1e-10, line_search_fn="strong_wolfe")

    def closure():  # type: ignore[no-untyped-def]
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(a @ w + c, ytr) + 0.05 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        assert tr == float(((a @ w + c).argmax(-1) == ytr).float().mean())
        assert te == float(((b @ w + c).argmax(-1) == yte).float().mean())
    assert te > 0.8  # and the signal is found


def test_probe_picks_the_layer_without_the_test_prompts_and_scores_a_control() -> None:
    """Three layers: 0 noise, 1 the relation label, 2 the word-pair identity (memorisable).
    Cross-validation picks layer 1; the control task (one random label per pair type) is
    learnt on layer 2 as well as the relation, so its selectivity is ~0, and layer 1's is high.
    Changing the test prompts' labels changes no cv score and not the pick."""
    from cotlens.circuits.probe import control_labels, group_folds, probe_layers

    g = torch.Generator().manual_seed(0)
    groups = [i // 6 for i in range(120)]  # 20 prompts of 6 pairs
    types = [(f"w{i % 10}", f"v{i % 7}") for i in range(120)]  # 70 pair types, each in many prompts
    y_rel = torch.randint(0, 3, (120,), generator=g)
    y_control = torch.tensor(control_labels(types, y_rel.tolist(), seed=0))
    assert control_labels(types, y_rel.tolist(), seed=0) == y_control.tolist()  # one label per type
    assert len({(t, c) for t, c in zip(types, y_control.tolist(), strict=True)}) == len(set(types))
    test_groups = {0, 1, 2, 3, 4, 5}
    test = torch.tensor([gr in test_groups for gr in groups])
    x = torch.randn(120, 3, 80, generator=g) * 0.1
    x[:, 1, :3] += 3.0 * torch.nn.functional.one_hot(y_rel, 3)
    type_id = torch.tensor([sorted(set(types)).index(t) for t in types])
    x[:, 2, :70] += 3.0 * torch.nn.functional.one_hot(type_id, 70)  # the pair's identity
    scores, best = probe_layers(x, y_rel, y_control, groups, test_groups, folds=4, seed=0)
    s = {(sc.layer, sc.task): sc for sc in scores}
    assert best == 1
    assert s[(0, "relation")].cv < 0.6  # noise
    # the pick and the cv scores never see the test prompts: other test labels change nothing but test
    y_other = y_rel.clone()
    y_other[test] = (y_rel[test] + 1) % 3
    scores2, best2 = probe_layers(x, y_other, y_control, groups, test_groups, folds=4, seed=0)
    assert best2 == best and [(a.cv, a.train) for a in scores2] == [(a.cv, a.train) for a in scores]
    assert s[(1, "relation")].test > 0.9 > 0.1 > next(a.test for a in scores2 if (a.layer, a.task) == (1, "relation"))
    assert s[(1, "relation")].test > 0.9 and s[(1, "control")].test < 0.6  # selective
    assert s[(2, "control")].test > 0.9  # identities let the probe memorise the control task:
    assert s[(2, "relation")].test - s[(2, "control")].test < 0.3  # a high accuracy, low selectivity
    folds = group_folds(groups, 4)
    assert sorted(i for f in folds for i in f) == list(range(20))  # every prompt in exactly one fold


def test_held_out_prompts_leave_two_to_cross_validate() -> None:
    from cotlens.circuits.probe import held_out
    from cotlens.errors import CotlensError

    assert len(held_out([1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.3)) == 3
    assert len(held_out([1, 2, 3], 0.9)) == 1  # two stay for the folds
    assert held_out(range(10), 0.3, seed=4) == held_out(range(10), 0.3, seed=4)
    with pytest.raises(CotlensError, match=r"word pairs in 2 prompt\(s\); it needs at least 3"):
        held_out([5, 5, 6], 0.3)


def _patching(path, rows) -> None:  # type: ignore[no-untyped-def]
    from cotlens.circuits import tables
    from cotlens.io.parquet import RunMeta, to_table, write_table

    cols = {f.name: [r.get(f.name) for r in rows] for f in tables.PATCHING}
    write_table(to_table(cols, tables.PATCHING), path, RunMeta("patch", "test"))


def test_head_ranking_prefers_full_sweeps_then_exact_top_k_then_the_screen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cotlens.circuits.heads import head_ranking

    def row(pair, method, layer, head, nkl, selection="all_heads"):  # type: ignore[no-untyped-def]
        return {
            "pair_id": pair,
            "subtask": "copy",
            "method": method,
            "screen": "eap-ig:1",
            "selection": selection,
            "positions": "all",
            "pos": None,
            "layer": layer,
            "head": head,
            "nkl": nkl,
            "logit_diff": None if method == "attribution" else 0.0,
        }

    heads = [(0, 0), (0, 1), (1, 0), (1, 1)]
    screen = {(0, 0): 0.9, (0, 1): 0.1, (1, 0): 0.5, (1, 1): 0.3}
    # no pair swept: the exactly patched heads by their exact score, then the rest by the screen
    rows = [row(0, "attribution", *h, screen[h]) for h in heads]
    rows += [row(0, "exact", 1, 1, 0.7, "screen_top_k"), row(0, "exact", 0, 1, 0.2, "screen_top_k")]
    _patching(tmp_path / "a.parquet", rows)
    assert head_ranking(tmp_path / "a.parquet", 2, 2) == [(1, 1), (0, 1), (0, 0), (1, 0)]
    # pair 1 fully swept: only its exact scores count
    rows += [row(1, "exact", *h, s) for h, s in zip(heads, [0.1, 0.4, 0.3, 0.2], strict=True)]
    _patching(tmp_path / "b.parquet", rows)
    assert head_ranking(tmp_path / "b.parquet", 2, 2) == [(0, 1), (1, 0), (1, 1), (0, 0)]
