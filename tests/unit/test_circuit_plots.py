"""Study 1 figures: the rift detector has a null, and sufficiency is judged against
several random head sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cotlens import schemas
from cotlens.parquet import RunMeta, to_table, write_table
from cotlens.plotting.circuits import rift_test, sufficiency


def test_a_step_in_depth_is_a_rift_and_noise_is_not() -> None:
    rng = np.random.default_rng(0)
    step = np.r_[np.full(15, 0.2), np.full(15, 0.7)] + rng.normal(0, 0.03, 30)
    t = rift_test(step.tolist())
    assert t["verdict"] == "reproduced" and t["rift_layer"] == 15 and t["p_vs_shuffled_layers"] <= 0.01
    noise = 0.3 + rng.normal(0, 0.03, 30)
    noise[28] = 0.6  # one spike near the top: the detector alone would call it a rift
    t = rift_test(noise.tolist())
    assert t["verdict"] == "not detected at this n" and t["p_vs_shuffled_layers"] > 0.05
    late = np.r_[np.full(27, 0.1), np.full(3, 0.6)] + rng.normal(0, 0.01, 30)  # a real step, but at the top
    t = rift_test(late.tolist())
    assert t["step_detected"] and t["rift_layer"] == 27 and t["verdict"].startswith("a step, but at 90%")


def circuit_table(path: Path, top_rate: float, random_rate: float, pairs: int = 30) -> Path:
    rng = np.random.default_rng(1)
    cols: dict[str, list] = {f.name: [] for f in schemas.SUFFICIENCY}
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
    write_table(to_table(cols, schemas.SUFFICIENCY), path, RunMeta("circuits_sufficiency", "x"))
    return path


def test_sufficiency_verdicts(tmp_path: Path) -> None:
    good = circuit_table(tmp_path / "good.parquet", 0.9, 0.2)
    out = sufficiency({"sufficiency": str(good)}, [tmp_path / "g.png"], "m")
    assert out["smallest_k_beating_random"] == 8
    assert out["per_k"][8]["verdict"] == "reproduced" and out["per_k"][8]["draws"] == 10
    same = circuit_table(tmp_path / "same.parquet", 0.5, 0.5)
    out = sufficiency({"sufficiency": str(same)}, [tmp_path / "s.png"], "m")
    assert out["smallest_k_beating_random"] is None
    assert out["per_k"][32]["verdict"] == "not detected at this n"


def heads_table(path: Path, step: bool) -> Path:
    """8 layers x 4 heads x 12 pairs. With ``step``, content readings are in the prompt from
    layer 4 on; every fourth reading is a function word (ignored). Head (6, 1) writes the
    answer and attends to it."""
    rng = np.random.default_rng(2)
    cols: dict[str, list] = {f.name: [] for f in schemas.HEADS}
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
    write_table(to_table(cols, schemas.HEADS), path, RunMeta("heads", "x"))
    return path


def test_rift_and_answer_heads_figures(tmp_path: Path) -> None:
    from cotlens.plotting.circuits import answer_heads, rift

    t = heads_table(tmp_path / "h.parquet", step=True)
    r = rift({"heads": str(t)}, [tmp_path / "r.png"], "m")
    assert r["verdict"] == "reproduced" and r["rift_layer"] == 4 and r["function_share"] == 0.25
    flat = heads_table(tmp_path / "f.parquet", step=False)
    assert rift({"heads": str(flat)}, [tmp_path / "f.png"], "m")["verdict"] == "not detected at this n"
    a = answer_heads({"heads": str(t)}, [tmp_path / "a.png"], "m")
    assert a["top"][0] == "L6H1" and a["late_verdict"] == "reproduced" and a["attn_top5"] > a["attn_all"]
