"""Study 1 figures: the rift detector has a null and a located step, sufficiency is judged
against several random head sets over a family of k, and a model at chance on the
questions cannot test the claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cotlens.circuits import tables
from cotlens.circuits.analysis import rift_test, rift_verdict
from cotlens.circuits.figures import sufficiency
from cotlens.io.parquet import RunMeta, to_table, write_table


def _default(t: pa.DataType) -> Any:
    if pa.types.is_list(t):
        return []
    if pa.types.is_string(t):
        return ""
    if pa.types.is_boolean(t):
        return False
    return 0


def write(path: Path, schema: pa.Schema, rows: list[dict[str, Any]]) -> str:
    cols = {f.name: [r.get(f.name, _default(f.type)) for r in rows] for f in schema}
    write_table(to_table(cols, schema), path, RunMeta("x", "x"))
    return str(path)


def spine(tmp: Path, accuracy: float = 0.9, pairs: int = 30, per_prompt: int = 2) -> dict[str, str]:
    """prompts, samples (answer accuracy ``accuracy`` over 40 questions) and pairs
    (``per_prompt`` pairs per prompt): the inputs of the study's precondition."""
    right = round(40 * accuracy)
    prompts = [{"prompt_id": i, "ontology": "fictional", "hops": 1, "distractors": "none"} for i in range(40)]
    samples = [{"prompt_id": i, "answer": "True", "answer_correct": i < right} for i in range(40)]
    prs = [{"pair_id": p, "prompt_id": p // per_prompt, "subtask": "copy"} for p in range(pairs)]
    return {
        "prompts": write(tmp / "prompts.parquet", tables.CIRCUITS_PROMPTS, prompts),
        "samples": write(tmp / "samples.parquet", tables.SAMPLES, samples),
        "pairs": write(tmp / "pairs.parquet", tables.PAIRS, prs),
    }


def test_a_step_in_depth_is_a_rift_and_noise_is_not() -> None:
    rng = np.random.default_rng(0)
    step = np.r_[np.full(15, 0.2), np.full(15, 0.7)] + rng.normal(0, 0.03, 30)
    t = rift_test(step.tolist())
    assert t["step_detected"] and t["rift_layer"] == 15 and t["p_vs_shuffled_layers"] <= 0.01
    assert rift_verdict(t, (0.45, 0.55))[0] == "reproduced"
    assert rift_verdict(t, (0.3, 0.55))[0] == "inconclusive"  # the interval straddles the band's edge
    noise = 0.3 + rng.normal(0, 0.03, 30)
    noise[28] = 0.6  # one spike near the top: the detector alone would call it a rift
    t = rift_test(noise.tolist())
    assert not t["step_detected"] and t["p_vs_shuffled_layers"] > 0.05
    assert rift_verdict(t, (0.9, 0.95))[0] == "inconclusive"
    late = np.r_[np.full(27, 0.1), np.full(3, 0.6)] + rng.normal(0, 0.01, 30)  # a real step, but at the top
    t = rift_test(late.tolist())
    assert t["step_detected"] and t["rift_layer"] == 27 and rift_verdict(t, (0.87, 0.93))[0] == "absent"


def circuit_table(path: Path, top_rate: float, random_rate: float, pairs: int = 30) -> Path:
    rng = np.random.default_rng(1)
    cols: dict[str, list] = {f.name: [] for f in tables.SUFFICIENCY}
    for k in (0, 8, 32):
        for draw in [-1, *range(10)]:
            rate = (top_rate if draw < 0 else random_rate) if k else 0.0
            if k == 0 and draw >= 0:
                continue
            for pid in range(pairs):
                a = bool(rng.random() < rate)
                for key, v in (
                    ("k", k),
                    ("pair_id", pid),
                    ("subtask", "copy"),
                    ("agree", a),
                    ("p_clean_tok", 0.5),
                    ("random", draw >= 0),
                    ("draw", draw),
                ):
                    cols[key].append(v)
    write_table(to_table(cols, tables.SUFFICIENCY), path, RunMeta("circuits_sufficiency", "x"))
    return path


def test_sufficiency_verdicts(tmp_path: Path) -> None:
    sp = spine(tmp_path)
    good = circuit_table(tmp_path / "good.parquet", 0.9, 0.2)
    out = sufficiency({"sufficiency": str(good), **sp}, [tmp_path / "g.png"], "m")
    assert out["headline"]["verdict"] == "reproduced" and out["headline"]["n"] == "15 prompts (30 pairs)"
    assert out["per_k"][8]["verdict"] == "reproduced" and out["per_k"][8]["draws"] == 10
    assert out["family_confidence"] == 0.975  # two k tested: Bonferroni
    same = circuit_table(tmp_path / "same.parquet", 0.5, 0.5)
    out = sufficiency({"sufficiency": str(same), **sp}, [tmp_path / "s.png"], "m")
    assert out["headline"]["verdict"] in ("absent", "inconclusive")
    assert out["per_k"][32]["verdict"] in ("absent", "inconclusive")
    # a model at chance on the questions cannot test it, however clear the circuit
    chance = spine(tmp_path / "c", accuracy=0.5) if (tmp_path / "c").mkdir() is None else {}
    out = sufficiency({"sufficiency": str(good), **chance}, [tmp_path / "c.png"], "m")
    assert out["headline"]["verdict"] == "not testable on this model"
    assert "answer accuracy: 20/40" in out["headline"]["reason"]


def heads_table(path: Path, step: bool) -> Path:
    """8 layers x 4 heads x 12 pairs. With ``step``, content readings are in the prompt from
    layer 4 on; every fourth reading is a function word (ignored). Head (6, 1) writes the
    answer and attends to it."""
    rng = np.random.default_rng(2)
    cols: dict[str, list] = {f.name: [] for f in tables.HEADS}
    for pid in range(12):
        for layer in range(8):
            for h in range(4):
                p_ctx = (0.8 if layer >= 4 else 0.15) if step else 0.4
                kind = "function" if (layer + h + pid) % 4 == 0 else ("context" if rng.random() < p_ctx else "prior")
                star = (layer, h) == (6, 1)
                row = {
                    "pair_id": pid,
                    "layer": layer,
                    "head": h,
                    "dla": (3.0 if star else 0.0) + rng.normal(0, 0.2),
                    "dla_answer": 0.0,
                    "top_token": 5,
                    "in_context": kind != "prior",
                    "top_kind": kind,
                    "context_chance": 0.01,
                    "attn_answer": (0.7 if star else 0.05) + rng.uniform(0, 0.02),
                }
                for k, v in row.items():
                    cols[k].append(v)
    write_table(to_table(cols, tables.HEADS), path, RunMeta("heads", "x"))
    return path


def test_rift_and_answer_heads_figures(tmp_path: Path) -> None:
    from cotlens.circuits.figures import answer_heads, rift

    sp = spine(tmp_path)
    t = heads_table(tmp_path / "h.parquet", step=True)
    r = rift({"heads": str(t), **sp}, [tmp_path / "r.png"], "m")
    assert r["rift_layer"] == 4 and r["function_share"] == 0.25 and r["step_detected"]
    assert r["depth_ci95"][0] <= 0.5 <= r["depth_ci95"][1] and r["headline"]["verdict"] == "reproduced"
    flat = heads_table(tmp_path / "f.parquet", step=False)
    assert rift({"heads": str(flat), **sp}, [tmp_path / "f.png"], "m")["headline"]["verdict"] == "inconclusive"
    a = answer_heads({"heads": str(t), **sp}, [tmp_path / "a.png"], "m")
    assert a["top"][0] == "L6H1" and a["late_verdict"][0] == "reproduced" and a["attn_top5"] > a["attn_all"]
    assert a["headline"]["verdict"] in ("reproduced", "inconclusive")


def test_circuits_are_ranked_on_the_other_half_of_the_prompts() -> None:
    import pytest

    from cotlens.circuits.heads import cross_fit
    from cotlens.errors import CotlensError

    rows = [
        {"pair_id": 0, "prompt_id": 0, "subtask": "copy"},
        {"pair_id": 1, "prompt_id": 0, "subtask": "copy"},
        {"pair_id": 2, "prompt_id": 1, "subtask": "copy"},
        {"pair_id": 3, "prompt_id": 2, "subtask": "decision"},
        {"pair_id": 4, "prompt_id": 3, "subtask": "induction"},
    ]
    seen: list[set[int]] = []

    def rank(ids: set[int]) -> list[tuple[int, int]]:
        seen.append(set(ids))
        return [(len(seen), 0)]

    fold, ranking = cross_fit(rows, rank, per_subtask=True)
    assert fold == {0: 0, 1: 0, 2: 1, 3: 0, 4: 1}  # pairs of one prompt share a fold
    calls = dict(zip([("pooled", 0), ("copy", 0), ("decision", 0), ("induction", 0)], seen[:4], strict=False))
    assert calls[("pooled", 0)] == {2, 4} and calls[("copy", 0)] == {2}  # fold 0 is ranked on fold 1 only
    for (sub, f), r in ranking.items():
        used = seen[r[0][0] - 1]
        assert not used & {p for p, g in fold.items() if g == f}, (sub, f, used)  # never its own pairs
    # decision has no pair in fold 1: fold 0's decision pairs borrow fold 1's pooled ranking
    assert ranking[("decision", 0)] == [(1, 0)]  # the first call: fold 0's pooled ranking
    with pytest.raises(CotlensError, match="one parity only"):
        cross_fit([r for r in rows if r["prompt_id"] % 2 == 0], rank, per_subtask=True)


def test_a_family_is_absent_only_when_every_member_is() -> None:
    """k=8: a degenerate [0, 0] (absent on its own); k=32: an interval holding 0 and the
    smallest effect. "Some k suffices" is then inconclusive, not absent."""
    import pandas as pd

    from cotlens.circuits.analysis import sufficiency_headline
    from cotlens.core.verdicts import Gate

    t = pd.DataFrame(
        [
            {
                "k": 8,
                "top": 0.0,
                "random": 0.0,
                "top_minus_random": 0.0,
                "ci_family": [0.0, 0.0],
                "p": 1.0,
                "n_prompts": 11,
                "n_pairs": 18,
            },
            {
                "k": 32,
                "top": 0.3,
                "random": 0.17,
                "top_minus_random": 0.13,
                "ci_family": [-0.1, 0.36],
                "p": 0.1,
                "n_prompts": 11,
                "n_pairs": 18,
            },
        ]
    )
    h, per_k = sufficiency_headline(t, Gate("answer accuracy", True, "ok"), 0.975)
    assert per_k[8]["verdict"] == "absent" and per_k[32]["verdict"] == "inconclusive"
    assert h.verdict == "inconclusive" and h.value.startswith("best k = 32")


def test_heatmaps_of_a_run_without_a_full_sweep_say_so(tmp_path: Path) -> None:
    """circuits.patch.exact_pairs: 0 (config/qwen-circuits.yaml): only screened top-K rows.
    The two heatmaps that need a full sweep draw a figure saying why, with no number (the
    per-position one raised a bare ValueError from seaborn on the empty grid)."""
    from cotlens.circuits.figures import patch_heads, patch_positions

    rows = [
        {
            "pair_id": p,
            "subtask": "copy",
            "method": m,
            "positions": "all",
            "selection": "screen_top_k",
            "layer": 1,
            "head": h,
            "nkl": 0.1 * h,
        }
        for p in range(3)
        for m in ("exact", "attribution")
        for h in range(3)
    ]
    inputs = {"patching": write(tmp_path / "patching.parquet", tables.PATCHING, rows)}
    for name, fn in (("heads", patch_heads), ("positions", patch_positions)):
        files = [tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"]
        out = fn(inputs, files, "m", 40)
        assert out["n_pairs"] == 0 and "exact_pairs: 0" in out["not_drawn"], name
        assert (tmp_path / f"{name}.png").stat().st_size > 500
    full = [{**r, "selection": "all_heads"} for r in rows]  # the control: a full sweep is drawn
    inputs = {"patching": write(tmp_path / "full.parquet", tables.PATCHING, full)}
    out = patch_heads(inputs, [tmp_path / "f.png", tmp_path / "f.pdf"], "m", 40)
    assert "not_drawn" not in out and out["copy"]["n_pairs"] == 3
