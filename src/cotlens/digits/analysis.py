"""Study 3's analysis: the numbers and verdicts its figures report, computed from its
tables (no drawing: ``cotlens.digits.figures`` draws them)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from cotlens.core.stats import bootstrap_mean
from cotlens.core.verdicts import Gate, paired_ci, proportion_ci
from cotlens.errors import CotlensError
from cotlens.io.parquet import read_meta, read_table

MIN_1X1_ACCURACY = 0.5  # the model gets most single-digit products right (declared; chance is far below)
MIN_AGREEMENT = 0.90  # an estimator keeps the model's own argmax on 90% of its confident items
CONFIDENT = 0.5  # an item where the plain model puts at least this much on one digit


def load(digits: str | os.PathLike[str]) -> pd.DataFrame:
    df = read_table(digits).to_pandas()
    df["first"] = df["place"] == 0
    df["last"] = df["place"] == df["n_places"] - 1
    df["correct"] = (df["argmax_digit"] == df["digit"]).astype(float)
    return df


def need(df: pd.DataFrame, setting: str, figure: str) -> pd.DataFrame:
    g = df[df["setting"] == setting]
    if g.empty:
        raise CotlensError(
            f"figure {figure} needs the {setting!r} setting", f"add {setting} to digits.confidence.settings"
        )
    return g


def paired(df: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> pd.DataFrame:
    """Per problem (n, m, problem_id): p_correct of reading ``a`` and of reading ``b``,
    each a (setting, 'first'|'last') pair; only multi-digit answers (first != last)."""
    cols = []
    for setting, which in (a, b):
        g = df[(df["setting"] == setting) & df[which] & (df["n_places"] > 1)]
        cols.append(g.set_index(["n", "m", "problem_id"])["p_correct"].rename(f"{setting}_{which}"))
    return pd.concat(cols, axis=1, join="inner").reset_index()


def estimator(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The estimator the table was made with: ``{"name", "p", "samples"}``."""
    cfg = read_meta(path).get("config", {})
    name = str(cfg["estimator"])
    if name != "mc_dropout":
        return {"name": name}
    return {"name": name, "p": cfg["mc_dropout"]["p"], "samples": cfg["mc_dropout"]["samples"]}


def estimator_check(df: pd.DataFrame, est: dict[str, Any]) -> tuple[dict[str, Any], Gate]:
    """The estimator against the model's own softmax on the same items (every place of every
    setting): mean |p_correct - p_plain|, argmax agreement overall and on the items where the
    plain model is confident (max digit probability >= CONFIDENT); the gate fails below
    MIN_AGREEMENT there."""
    dp = (df["p_correct"] - df["p_plain"]).abs()
    agree = df["argmax_digit"] == df["argmax_plain"]
    conf = df["p_max_plain"] >= CONFIDENT
    a_conf = float(agree[conf].mean()) if conf.any() else float("nan")
    check = {
        **est,
        "mean_abs_dp": round(float(dp.mean()), 4),
        "argmax_agreement": round(float(agree.mean()), 4),
        "argmax_agreement_confident": round(a_conf, 4) if np.isfinite(a_conf) else None,
        "confident_items": int(conf.sum()),
        "items": len(df),
    }
    if est["name"] == "softmax":
        return check, Gate("estimator", True, "the model's own softmax")
    ok = bool(np.isfinite(a_conf) and a_conf >= MIN_AGREEMENT)
    detail = (
        f"MC dropout p = {est.get('p')} keeps the model's argmax on {a_conf:.0%} of {int(conf.sum())} confident "
        f"items (needs {MIN_AGREEMENT:.0%}), mean |dp| {check['mean_abs_dp']:.3f}"
        + ("" if ok else ": the estimator changes the model")
    )
    return check, Gate("estimator", ok, detail)


def competence(df: pd.DataFrame) -> Gate:
    """Plain argmax accuracy on the 1x1 products (every digit right, the higher ones given)."""
    one = df[(df["n"] == 1) & (df["m"] == 1) & (df["setting"] == "conditioned")]
    if one.empty:
        return Gate("1x1 products", None, "no 1x1 cell in the grid")
    solved = one.groupby("problem_id").apply(lambda g: bool((g["argmax_plain"] == g["digit"]).all()))
    k, n = int(solved.sum()), len(solved)
    lo, hi = proportion_ci(k, n)
    ok = k / n > MIN_1X1_ACCURACY
    return Gate(
        "1x1 products",
        ok,
        f"plain argmax accuracy {k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}] (needs more than {MIN_1X1_ACCURACY:.2f})",
    )


def gates(df: pd.DataFrame, path: str | os.PathLike[str]) -> tuple[list[Gate], dict[str, Any]]:
    check, g = estimator_check(df, estimator(path))
    return [competence(df), g], check


def contrast(pairs: pd.DataFrame, a: str, b: str) -> dict[str, Any]:
    """mean(b - a) over problems with its 95% t interval."""
    d, lo, hi = paired_ci(pairs[a], pairs[b])
    return {
        a: round(float(pairs[a].mean()), 4),
        b: round(float(pairs[b].mean()), 4),
        "difference": round(d, 4),
        "ci95": [round(lo, 4), round(hi, 4)],
        "n": len(pairs),
    }


def largest_cells(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows of the headline cells: the cells whose n + m is the largest or one less
    (5x5, 4x5 and 5x4 on the default grid: the large products the paper's claims are
    about), pooled for power; and their label."""
    multi = df[df["n_places"] > 1]
    if multi.empty:
        raise CotlensError("no multi-digit product in the digits table", "use digits.prompts.n_digits/m_digits above 1")
    size = multi["n"].astype(int) + multi["m"].astype(int)
    keep = multi[size >= size.max() - 1]
    cells = sorted({(int(a), int(b)) for a, b in zip(keep["n"], keep["m"], strict=True)}, reverse=True)
    return keep, ", ".join(f"{a}x{b}" for a, b in cells)


def cell_means(g: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (n, m), c in g.groupby(["n", "m"]):
        mean, lo, hi = bootstrap_mean(c["p_correct"].to_numpy())
        rows.append({"n": n, "m": m, "mean": mean, "lo": lo, "hi": hi, "count": len(c)})
    return pd.DataFrame(rows)
