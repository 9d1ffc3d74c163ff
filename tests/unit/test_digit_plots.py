"""Digit figures: the verdict comes from the numbers and the claim's smallest effect; a
model that cannot multiply single digits, or an estimator that changes the model, makes
the claims "not testable"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cotlens.digits import figures as plots
from cotlens.digits import tables
from cotlens.io.parquet import RunMeta, to_table, write_table


def table(
    path: Path,
    lift: float,
    n: int,
    seed: int = 0,
    noise: float = 0.15,
    one_by_one_right: bool = True,
    estimator: dict[str, Any] | None = None,
    flip_argmax: float = 0.0,
) -> Path:
    """Two-digit products; the last digit's confidence is 0.2 + noise unconditioned and
    0.2 + lift + noise conditioned; the first digit 0.8 + noise in both. Eight 1x1 products
    (the competence gate), right or wrong. ``flip_argmax``: the share of items whose
    estimator argmax differs from the plain model's (an estimator that changes the model)."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list] = {f.name: [] for f in tables.DIGITS}

    def add(pid: int, n_: int, setting: str, place: int, n_places: int, p: float, plain_argmax: int) -> None:
        p = float(np.clip(p, 0, 1))
        est_argmax = plain_argmax if rng.random() >= flip_argmax else (plain_argmax + 1) % 10
        row = dict(
            problem_id=pid,
            n=n_,
            m=n_,
            setting=setting,
            place=place,
            n_places=n_places,
            digit=3,
            prefix_correct=True,
            p_correct=p,
            p_std=0.0,
            argmax_digit=est_argmax,
            p_plain=p,
            argmax_plain=plain_argmax,
            p_max_plain=max(p, 1 - p),
        )
        for k, v in row.items():
            cols[k].append(v)

    for pid in range(8):
        for setting in ("conditioned", "unconditioned"):
            add(1000 + pid, 1, setting, 0, 1, 0.9, 3 if one_by_one_right else 4)
    for pid in range(n):
        e = rng.normal(0, noise, 3)
        for setting, p_last in (("unconditioned", 0.2 + e[1]), ("conditioned", 0.2 + lift + e[2])):
            for place, p in ((0, 0.8 + e[0]), (1, p_last)):
                add(pid, 2, setting, place, 2, p, 3 if p > 0.5 else 1)
    cfg = {"estimator": "softmax", "mc_dropout": {"p": 0.1, "samples": 20}, **(estimator or {})}
    write_table(to_table(cols, tables.DIGITS), path, RunMeta.of("digits_confidence", cfg))
    return path


def headline(t: Path, tmp: Path, figure: str = "conditioning") -> dict[str, Any]:
    fn = plots.digit_conditioning if figure == "conditioning" else plots.digit_confidence
    return fn({"confidence": str(t)}, [tmp / f"{figure}.png"], "m")["headline"]


def test_a_paper_sized_effect_is_reproduced(tmp_path: Path) -> None:
    t = table(tmp_path / "d.parquet", lift=0.30, n=40)
    h = headline(t, tmp_path)
    assert h["verdict"] == "reproduced" and h["n"] == "40 problems" and h["ci95"][0] > 0.15 - 0.1
    assert h["estimate"] == pytest.approx(0.30, abs=0.06)
    first = headline(t, tmp_path, "heatmaps")
    assert first["verdict"] == "reproduced" and first["estimate"] == pytest.approx(0.6, abs=0.1)


def test_a_tenth_of_the_paper_is_smaller_than_the_paper(tmp_path: Path) -> None:
    h = headline(table(tmp_path / "d.parquet", lift=0.03, n=400, noise=0.05), tmp_path)
    assert h["verdict"] == "smaller than the paper" and "of the paper's 0.3" in h["reason"]


def test_no_effect_with_enough_n_is_absent_and_with_little_n_inconclusive(tmp_path: Path) -> None:
    h = headline(table(tmp_path / "d.parquet", lift=0.0, n=200, noise=0.1), tmp_path)
    assert h["verdict"] == "absent" and -0.15 < h["ci95"][0] and h["ci95"][1] < 0.15
    h = headline(table(tmp_path / "e.parquet", lift=0.0, n=4, seed=3, noise=0.1), tmp_path)
    assert h["verdict"] == "inconclusive" and h["ci95"][0] < 0 < 0.15 < h["ci95"][1]
    acc = plots.digit_accuracy({"confidence": str(table(tmp_path / "f.parquet", 0.0, 12))}, [tmp_path / "a.png"], "m")
    assert acc["2x2 place 0"][3] == 12


def test_a_model_that_cannot_multiply_single_digits_cannot_test_the_claims(tmp_path: Path) -> None:
    h = headline(table(tmp_path / "d.parquet", lift=0.30, n=40, one_by_one_right=False), tmp_path)
    assert h["verdict"] == "not testable on this model" and "1x1 products: plain argmax accuracy 0/8" in h["reason"]


def test_an_estimator_that_changes_the_model_makes_the_claims_not_testable(tmp_path: Path) -> None:
    mc = {"estimator": "mc_dropout", "mc_dropout": {"p": 0.1, "samples": 20}}
    t = table(tmp_path / "d.parquet", lift=0.30, n=40, estimator=mc, flip_argmax=0.3)
    out = plots.digit_conditioning({"confidence": str(t)}, [tmp_path / "c.png"], "m")
    assert out["estimator_check"]["argmax_agreement_confident"] < 0.9
    assert out["headline"]["verdict"] == "not testable on this model"
    assert "the estimator changes the model" in out["headline"]["reason"]
    # the same estimator keeping the model's argmax passes the check
    t = table(tmp_path / "e.parquet", lift=0.30, n=40, estimator=mc, flip_argmax=0.0)
    assert headline(t, tmp_path)["verdict"] == "reproduced"
