"""Digit figures: the verdict comes from the numbers, and says "not detected" when the
interval allows it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cotlens import schemas
from cotlens.parquet import RunMeta, to_table, write_table
from cotlens.plotting import digits as plots


def table(path: Path, lift: float, n: int, seed: int = 0) -> Path:
    """Two-digit products; the last digit's confidence is 0.2 + noise unconditioned and
    0.2 + lift + noise conditioned; the first digit 0.8 + noise in both."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {f.name: [] for f in schemas.DIGITS}
    for pid in range(n):
        noise = rng.normal(0, 0.15, 3)
        for setting, p_last in (("unconditioned", 0.2 + noise[1]), ("conditioned", 0.2 + lift + noise[2])):
            for place, p in ((0, 0.8 + noise[0]), (1, p_last)):
                row = dict(
                    problem_id=pid,
                    n=2,
                    m=2,
                    setting=setting,
                    place=place,
                    n_places=2,
                    digit=3,
                    prefix_correct=True,
                    p_correct=float(np.clip(p, 0, 1)),
                    p_std=0.0,
                    argmax_digit=3 if p > 0.5 else 1,
                )
                for k, v in row.items():
                    cols[k].append(v)
    write_table(to_table(cols, schemas.DIGITS), path, RunMeta("digits_confidence", "x"))
    return path


def test_planted_conditioning_effect_is_reproduced(tmp_path: Path) -> None:
    t = table(tmp_path / "d.parquet", lift=0.25, n=40)
    out = [tmp_path / "c.png"]
    data = plots.conditioning({"confidence": str(t)}, out, "m")
    c = data["conditioning"]
    assert c["verdict"] == "reproduced" and c["n"] == 40 and c["ci95"][0] > 0
    first = plots.confidence_heatmaps({"confidence": str(t)}, [tmp_path / "f.png"], "m")["first_minus_last"]
    assert first["verdict"] == "reproduced" and first["difference"] == pytest.approx(0.6, abs=0.1)


def test_no_effect_is_not_detected(tmp_path: Path) -> None:
    t = table(tmp_path / "d.parquet", lift=0.0, n=12, seed=3)
    c = plots.conditioning({"confidence": str(t)}, [tmp_path / "c.png"], "m")["conditioning"]
    assert c["verdict"] == "not detected at this n" and c["ci95"][0] < 0 < c["ci95"][1]
    acc = plots.accuracy_by_position({"confidence": str(t)}, [tmp_path / "a.png"], "m")
    assert acc["2x2 place 0"][3] == 12
