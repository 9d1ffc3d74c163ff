"""Study 2 summaries behind the figures: accuracies, intervals, correlation inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cotlens.core.stats import paired_bootstrap, wilson
from cotlens.neurons.analysis import ablation_summary, phenomena, variant_summary
from cotlens.neurons.figures import _key


def _runs() -> pd.DataFrame:
    rows = []
    for pid in range(10):
        rows.append(("variant", "full", "none", -1, 0, pid, pid < 6, 1.0))
        rows.append(("variant", "text_only", "none", -1, 0, pid, pid < 3, 0.5))
        rows.append(("concept", "full", "zero", -1, 3, pid, pid < 1, 0.0))
        for seed in (0, 1):
            rows.append(("random", "full", "zero", seed, 3, pid, pid < 5 + seed, 1.0))
    cols = ["condition", "variant", "mode", "seed", "n_ablated", "problem_id", "correct", "concept_act"]
    df = pd.DataFrame(rows, columns=cols)
    return df.assign(concept_active=df["concept_act"] * 4)  # the activation level: a count


def test_ablation_summary() -> None:
    s = ablation_summary(_runs()).set_index(["condition", "mode"])
    assert s.loc[("none", "none"), "acc"] == pytest.approx(0.6)
    assert s.loc[("concept", "zero"), "acc"] == pytest.approx(0.1)
    assert s.loc[("random", "zero"), "acc"] == pytest.approx(0.55)  # pooled over seeds
    assert s.loc[("random", "zero"), "seed_sd"] == pytest.approx(0.05)
    lo, hi = s.loc[("concept", "zero"), "ci"]
    assert lo < 0.1 < hi


def test_variant_summary_and_wilson() -> None:
    v = variant_summary(_runs())
    assert list(v.index) == ["full", "text_only"]
    assert v.loc["text_only", "acc"] == pytest.approx(0.3) and v.loc["text_only", "act"] == pytest.approx(2.0)
    assert v.loc["text_only", "mean_act"] == pytest.approx(0.5)
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.2 < hi < 0.35
    assert wilson(5, 0) == (0.0, 0.0)


def test_ablation_summary_keeps_set_sizes_apart() -> None:
    """Random controls of the concept set (3 neurons) and of a top-n set (30) are separate rows."""
    rows = []
    for pid in range(10):
        rows.append(("variant", "full", "none", -1, 0, pid, True, 1.0))
        rows.append(("concept", "full", "zero", -1, 3, pid, pid < 9, 0.0))
        rows.append(("top", "full", "zero", -1, 30, pid, pid < 2, 0.0))
        for seed in (0, 1):
            rows.append(("random", "full", "zero", seed, 3, pid, True, 1.0))
            rows.append(("random", "full", "zero", seed, 30, pid, pid < 8, 1.0))
    cols = ["condition", "variant", "mode", "seed", "n_ablated", "problem_id", "correct", "concept_act"]
    s = ablation_summary(pd.DataFrame(rows, columns=cols))
    assert list(zip(s["condition"], s["n_ablated"], strict=True)) == [
        ("none", 0),
        ("concept", 3),
        ("random", 3),
        ("top", 30),
        ("random", 30),
    ]
    acc = dict(zip(zip(s["condition"], s["n_ablated"], strict=True), s["acc"], strict=True))
    assert acc[("random", 3)] == pytest.approx(1.0) and acc[("random", 30)] == pytest.approx(0.8)
    assert acc[("top", 30)] == pytest.approx(0.2)
    assert [_key(c, m, n, 3) for c, m, n in zip(s["condition"], s["mode"], s["n_ablated"], strict=True)] == [
        "none/none",
        "concept/zero",
        "random/zero",
        "top30/zero",
        "random30/zero",
    ]


def test_phenomena_are_paired_by_problem() -> None:
    """40 problems: text_only loses 20 of them, wrong_results loses 1; one operator: + only
    loses 10, x only none (mean per problem: -0.125); formula_only is missing."""
    rows = []
    for pid in range(40):
        rows.append(("variant", "full", pid, True))
        rows.append(("variant", "text_only", pid, pid >= 20))
        rows.append(("variant", "wrong_results", pid, pid != 0))
        rows.append(("variant", "add_only", pid, pid >= 10))
        rows.append(("variant", "mul_only", pid, True))
    df = pd.DataFrame(rows, columns=["condition", "variant", "problem_id", "correct"])
    got = {p["finding"]: p for p in phenomena(df)}
    assert set(got) == {"formula removed hurts", "a single operator hurts", "wrong results barely matter"}
    f = got["formula removed hurts"]
    assert f["delta"] == pytest.approx(-0.5) and f["ci95"][1] < 0 and f["holds"]
    one = got["a single operator hurts"]
    assert one["delta"] == pytest.approx(-0.125) and one["variants"] == ["add_only", "mul_only"] and one["holds"]
    w = got["wrong results barely matter"]
    assert w["delta"] == pytest.approx(-0.025) and w["holds"]
    # a finding that does not hold is reported as such
    flipped = df.assign(correct=np.where(df["variant"] == "text_only", True, df["correct"]))
    assert not {p["finding"]: p for p in phenomena(flipped)}["formula removed hurts"]["holds"]
    # "barely matters" needs the whole interval inside +-0.1: 1 loss in 8 problems is not enough
    few = df[df["problem_id"] < 8]
    w8 = {p["finding"]: p for p in phenomena(few)}["wrong results barely matter"]
    assert w8["verdict"] == "inconclusive" and not w8["holds"] and w8["n"] == 8


def test_paired_bootstrap_is_seeded_and_brackets_the_mean() -> None:
    a, b = [1.0] * 30, [1.0] * 20 + [0.0] * 10
    d, lo, hi = paired_bootstrap(a, b)
    assert d == pytest.approx(-1 / 3) and lo < d < hi < 0
    assert paired_bootstrap(a, b) == (d, lo, hi)


def test_figures_render_and_write_their_numbers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from cotlens.io.parquet import RunMeta, to_table, write_table
    from cotlens.neurons import figures as plots
    from cotlens.neurons import tables

    runs: dict[str, list[object]] = {f.name: [] for f in tables.NEURON_EFFECTS}

    def add(cond: str, variant: str, mode: str, seed: int, n: int, ok: list[bool]) -> None:
        for pid, c in enumerate(ok):
            row = {
                "condition": cond,
                "variant": variant,
                "mode": mode,
                "seed": seed,
                "n_ablated": n,
                "problem_id": pid,
                "pred": 1,
                "correct": c,
                "concept_act": 0.1 * sum(ok),
                "concept_active": 0.5 * sum(ok),
                "n_tokens": 9,
                "text": "",
            }
            for k, v in row.items():
                runs[k].append(v)

    full = [True] * 20
    for v, ok in [
        ("full", full),
        ("text_only", [i < 8 for i in range(20)]),
        ("formula_only", [i < 12 for i in range(20)]),
        ("add_only", [i < 14 for i in range(20)]),
        ("mul_only", full),
        ("wrong_results", [i > 0 for i in range(20)]),
    ]:
        add("variant", v, "none", -1, 0, ok)
    add("concept", "full", "zero", -1, 4, [i < 18 for i in range(20)])
    add("top", "full", "zero", -1, 50, [i < 3 for i in range(20)])
    for seed in (0, 1):
        add("random", "full", "zero", seed, 4, full)
        add("random", "full", "zero", seed, 50, [i < 19 for i in range(20)])
    write_table(to_table(runs, tables.NEURON_EFFECTS), tmp_path / "effects.parquet", RunMeta("neurons_effects", "x"))
    cols: dict[str, list[object]] = {f.name: [] for f in tables.NEURONS}
    for layer in range(3):
        for j in range(4):
            c = {(2, 0): "add", (2, 1): "mul"}.get((layer, j))
            row = {
                "layer": layer,
                "neuron": j,
                "freq": 0.1,
                "mean_act": 0.0,
                "rank": layer * 4 + j,
                "top_tokens": ["+"],
                "top_tokens_raw": ["+"],
                "concept": c,
                "labelled_by": "lexicon",
                "lexicon": c,
            }
            for k, v in row.items():
                cols[k].append(v)
    write_table(to_table(cols, tables.NEURONS), tmp_path / "neurons.parquet", RunMeta("neurons_discovery", "x"))
    inputs = {"effects": str(tmp_path / "effects.parquet"), "neurons": str(tmp_path / "neurons.parquet")}
    numbers = {}
    for name, fn in (("abl", plots.neuron_ablation), ("act", plots.neuron_activation), ("con", plots.neuron_concepts)):
        outs = [tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"]
        numbers[name] = json.loads(json.dumps(fn(inputs, outs, "m")))  # what the figure stage writes
        assert all(o.stat().st_size > 1000 for o in outs)
    abl = numbers["abl"]
    assert abl["concept/zero"] == 0.9 and abl["random/zero"] == 1.0
    assert abl["top50/zero"] == 0.15 and abl["random50/zero"] == 0.95 and abl["n_problems"] == 20
    v = abl["verdicts"]
    assert v["top 50 zero - random"]["verdict"] == "reproduced" and v["top 50 zero - random"]["difference"] == -0.8
    assert v["concept 4 zero - random"]["verdict"] == "inconclusive"  # 0.9 vs 1.0 on 20 problems
    act = numbers["act"]
    verdict = {p["finding"]: (p["delta"], p["verdict"]) for p in act["phenomena"]}
    # one loss in 20 is not enough to show that wrong results "barely matter" (+-0.1)
    assert verdict == {
        "formula removed hurts": (-0.6, "reproduced"),
        "text removed hurts": (-0.4, "reproduced"),
        "a single operator hurts": (-0.15, "reproduced"),
        "wrong results barely matter": (-0.05, "inconclusive"),
    }
    assert act["headline"]["verdict"] in ("reproduced", "inconclusive", "smaller than the paper")
    assert len(act["pearson_ci95"]) == 2 and act["headline"]["ci95"] == act["pearson_ci95"]
    # the ablation claim: 2 random sets are too few to judge it, whatever the numbers
    h = abl["headline"]
    assert h["verdict"] == "not testable on this model" and "2 random sets per ablated set (needs 20)" in h["reason"]
    assert h["estimate"] == 0.1 and "zero-ablated" in h["value"]  # no noise mode here: the first mode
    assert numbers["con"]["headline"]["verdict"] == "descriptive"
    con = numbers["con"]
    assert con["concept_neurons"] == 2 and con["by_concept"] == {"add": 1, "mul": 1}
