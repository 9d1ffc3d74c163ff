"""Digit-confidence figures (Gambardella et al., 2024).

Every number is a mean over problems; an effect is paired by problem with a t interval
(cotlens.core.verdicts); each tested figure writes its headline (value, interval, n, verdict,
reason, the study's preconditions) beside it (JSON) and puts it in its title.

Preconditions (cotlens.core.verdicts.Gate), from the table itself:
- the model multiplies single digits: plain argmax accuracy on the 1x1 products;
- the estimator does not change the model: with MC dropout, its argmax agrees with the
  model's own softmax on at least 90% of the items where the plain model is confident
  (``estimator_check``). Softmax is the model itself and passes by construction.

- ``digit_confidence``: the paper's contrast, first digit vs last digit, both without any
  correct digit given (the unconditioned setting; place 0 is the same in both settings);
- ``digit_conditioning``: the last digit after the model's own higher digits
  (unconditioned) vs after the correct ones (conditioned), paired per problem;
- ``digit_accuracy``: argmax accuracy by place, conditioned on the correct higher digits.
"""

from __future__ import annotations

import os
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cotlens.core.stats import bootstrap_mean, wilson
from cotlens.core.verdicts import Gate, headline, paired_ci, proportion_ci
from cotlens.digits.findings import CLAIMS
from cotlens.errors import CotlensError
from cotlens.io.figures import FigureFiles, Inputs, save
from cotlens.io.parquet import read_meta, read_table

PAPER = "paper, 5x5: Llama-2-13B 0.13 -> 0.43, Mistral-7B 0.22 -> 0.55"
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
        raise CotlensError(f"figure {figure} needs the {setting!r} setting", f"add {setting} to digits.settings")
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
    mc = dict(cfg.get("mc_dropout") or {})
    name = str(cfg.get("estimator", "softmax"))
    return {"name": name, **({"p": mc.get("p"), "samples": mc.get("samples")} if name == "mc_dropout" else {})}


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
        raise CotlensError("no multi-digit product in the digits table", "use digits.n_digits/m_digits above 1")
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


def confidence_heatmaps(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    df = load(inputs["confidence"])
    un = need(df, "unconditioned", "digit_confidence")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    means = {}
    for ax, which, title in ((axes[0], "first", "first digit"), (axes[1], "last", "last digit")):
        s = cell_means(un[un[which]])
        means[which] = s
        piv = s.pivot(index="n", columns="m", values="mean")
        sns.heatmap(
            piv,
            ax=ax,
            vmin=0,
            vmax=1,
            cmap="viridis",
            annot=True,
            fmt=".2f",
            cbar=ax is axes[1],
            cbar_kws={"label": "P(correct digit), mean over problems"},
        )
        ax.set_title(f"{title} (no correct digit given)")
        ax.set_xlabel("m (digits of b)")
    axes[0].set_ylabel("n (digits of a)")
    big, cells = largest_cells(df)
    pairs = paired(big, ("unconditioned", "first"), ("unconditioned", "last"))
    c = contrast(pairs, "unconditioned_last", "unconditioned_first")
    per = int(un.groupby(["n", "m"])["problem_id"].nunique().min())
    gs, check = gates(df, inputs["confidence"])
    h = headline(
        CLAIMS["digit_confidence"],
        f"first {c['unconditioned_first']:.2f} vs last {c['unconditioned_last']:.2f} at {cells}, "
        f"difference {c['difference']:+.2f}",
        c["difference"],
        (c["ci95"][0], c["ci95"][1]),
        f"{c['n']} problems",
        gates=gs,
    )
    fig.suptitle(f"{h.title(model)}\n({per} problems per cell; estimator {_est(check)})", y=1.05, fontsize=9)
    drawn = save(fig, outputs, dpi)
    return {
        "headline": h.to_json(),
        "drawn_titles": drawn,
        "cells_pooled": cells,
        "first_minus_last": c,
        "estimator_check": check,
        "problems_per_cell": per,
        "cells": {
            f"{r.n}x{r.m}": {w: round(float(means[w].set_index(["n", "m"]).loc[(r.n, r.m), "mean"]), 4) for w in means}
            for r in means["first"].itertuples()
        },
    }


def _est(check: dict[str, Any]) -> str:
    if check["name"] == "softmax":
        return "softmax (the model's own)"
    return (
        f"MC dropout p = {check.get('p')}, {check.get('samples')} passes: argmax agreement with the plain model "
        f"{check['argmax_agreement_confident']} on confident items, mean |dp| {check['mean_abs_dp']}"
    )


def conditioning(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    df = load(inputs["confidence"])
    need(df, "unconditioned", "digit_conditioning")
    need(df, "conditioned", "digit_conditioning")
    last = df[df["last"] & (df["n_places"] > 1) & df["setting"].isin(["unconditioned", "conditioned"])]
    rows = []
    for (n, m, setting), g in last.groupby(["n", "m", "setting"]):
        mean, lo, hi = bootstrap_mean(g["p_correct"].to_numpy())
        rows.append({"cell": f"{n}x{m}", "n": n, "m": m, "setting": setting, "mean": mean, "lo": lo, "hi": hi})
    s = pd.DataFrame(rows).sort_values(["n", "m"])
    cells = list(dict.fromkeys(s["cell"]))
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(cells)), 4))
    x = np.arange(len(cells))
    for off, (setting, label, col) in zip(
        (-0.2, 0.2),
        (("unconditioned", "own higher digits", "C1"), ("conditioned", "correct higher digits given", "C0")),
        strict=True,
    ):
        g = s[s["setting"] == setting].set_index("cell").reindex(cells)
        ax.bar(
            x + off, g["mean"], 0.4, color=col, label=label, yerr=[g["mean"] - g["lo"], g["hi"] - g["mean"]], capsize=2
        )
    ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance (1 in 10 digits)")
    ax.set_xticks(x, cells, rotation=90)
    ax.set(xlabel="a (n digits) x b (m digits)", ylabel="P(correct last digit), 95% CI", ylim=(0, 1))
    ax.legend(fontsize=8)
    big, pooled = largest_cells(df)
    pairs = paired(big, ("unconditioned", "last"), ("conditioned", "last"))
    c = contrast(pairs, "unconditioned_last", "conditioned_last")
    gs, check = gates(df, inputs["confidence"])
    h = headline(
        CLAIMS["digit_conditioning"],
        f"last digit at {pooled}: {c['unconditioned_last']:.2f} -> {c['conditioned_last']:.2f}, {c['difference']:+.2f}",
        c["difference"],
        (c["ci95"][0], c["ci95"][1]),
        f"{c['n']} problems",
        gates=gs,
    )
    ax.set_title(f"{h.title(model)}\n({PAPER}; estimator {_est(check)})", fontsize=8)
    drawn = save(fig, outputs, dpi)
    return {
        "headline": h.to_json(),
        "drawn_titles": drawn,
        "cells_pooled": pooled,
        "conditioning": c,
        "estimator_check": check,
        "cells": {f"{r.cell} {r.setting}": [round(r.mean, 4), round(r.lo, 4), round(r.hi, 4)] for r in s.itertuples()},
    }


def accuracy_by_position(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    df = load(inputs["confidence"])
    full = need(df, "conditioned", "digit_accuracy")
    full = full[full["n"] == full["m"]].copy()
    full["cell"] = full["n"].astype(str) + "x" + full["m"].astype(str)
    rows = []
    for (cell, place), g in full.groupby(["cell", "place"]):
        lo, hi = wilson(float(g["correct"].sum()), len(g))
        rows.append(
            {"cell": cell, "place": int(place), "acc": float(g["correct"].mean()), "lo": lo, "hi": hi, "count": len(g)}
        )
    acc = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (cell, g) in enumerate(acc.groupby("cell", sort=False)):
        ax.errorbar(
            g["place"] + 0.04 * i,
            g["acc"],
            yerr=[g["acc"] - g["lo"], g["hi"] - g["acc"]],
            marker="o",
            capsize=2,
            label=f"{cell} (n={int(g['count'].iloc[0])})",
        )
    ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance (1 in 10 digits)")
    ax.set_xlabel("digit place (0 = most significant)")
    ax.set_ylabel("argmax = correct digit (95% Wilson CI)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=7, title="n x m digits", title_fontsize=7)
    ax.set_title(f"{model}: accuracy by digit place, correct higher digits given", fontsize=9)
    save(fig, outputs, dpi)
    data = {
        f"{r.cell} place {r.place}": [round(r.acc, 4), round(r.lo, 4), round(r.hi, 4), r.count]
        for r in acc.itertuples()
    }
    return data


FIGURES = {
    "digit_confidence": confidence_heatmaps,
    "digit_conditioning": conditioning,
    "digit_accuracy": accuracy_by_position,
}
