"""Digit-confidence figures (Gambardella et al., 2024).

Every number is a mean over problems with a 95% bootstrap interval over problems; each
figure writes its numbers, n and the verdict beside it (JSON).

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

from cotlens.errors import CotlensError
from cotlens.parquet import read_table
from cotlens.plotting.base import Inputs, Paths, save
from cotlens.stats import bootstrap_mean, paired_bootstrap, verdict, wilson

PAPER = "paper, 5x5: Llama-2-13B 0.13 -> 0.43, Mistral-7B 0.22 -> 0.55"


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


def contrast(pairs: pd.DataFrame, a: str, b: str, expected: int) -> dict[str, Any]:
    """mean(b - a) over problems with its 95% bootstrap interval and the verdict."""
    d, lo, hi = paired_bootstrap(pairs[a], pairs[b])
    return {
        a: round(float(pairs[a].mean()), 4),
        b: round(float(pairs[b].mean()), 4),
        "difference": round(d, 4),
        "ci95": [round(lo, 4), round(hi, 4)],
        "n": len(pairs),
        "verdict": verdict(lo, hi, expected),
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


def confidence_heatmaps(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
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
    c = contrast(pairs, "unconditioned_last", "unconditioned_first", +1)
    per = int(un.groupby(["n", "m"])["problem_id"].nunique().min())
    fig.suptitle(
        f"{model}: confidence in the correct digit, {per} problems per cell; at {cells} first - last = "
        f"{c['difference']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]: {c['verdict']}",
        y=1.03,
        fontsize=9,
    )
    save(fig, outputs, dpi)
    data = {
        "claim": "the first digit is more confident than the last (paper: Llama-2, Mistral)",
        "cells_pooled": cells,
        "first_minus_last": c,
        "problems_per_cell": per,
        "cells": {
            f"{r.n}x{r.m}": {w: round(float(means[w].set_index(["n", "m"]).loc[(r.n, r.m), "mean"]), 4) for w in means}
            for r in means["first"].itertuples()
        },
    }
    return data


def conditioning(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
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
    ax.set_xticks(x, cells, rotation=90)
    ax.set(xlabel="a (n digits) x b (m digits)", ylabel="P(correct last digit), 95% CI", ylim=(0, 1))
    ax.legend(fontsize=8)
    big, pooled = largest_cells(df)
    pairs = paired(big, ("unconditioned", "last"), ("conditioned", "last"))
    c = contrast(pairs, "unconditioned_last", "conditioned_last", +1)
    ax.set_title(
        f"{model}: last digit at {pooled}: {c['unconditioned_last']:.2f} -> {c['conditioned_last']:.2f}, "
        f"{c['difference']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}], n={c['n']}: {c['verdict']}\n"
        f"({PAPER})",
        fontsize=9,
    )
    save(fig, outputs, dpi)
    data = {
        "claim": "correct higher digits raise last-digit confidence (" + PAPER + ")",
        "cells_pooled": pooled,
        "conditioning": c,
        "cells": {f"{r.cell} {r.setting}": [round(r.mean, 4), round(r.lo, 4), round(r.hi, 4)] for r in s.itertuples()},
    }
    return data


def accuracy_by_position(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
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
