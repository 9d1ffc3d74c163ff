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

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cotlens.core.stats import bootstrap_mean, wilson
from cotlens.core.verdicts import headline
from cotlens.digits.analysis import cell_means, contrast, gates, largest_cells, load, need, paired
from cotlens.digits.findings import CLAIMS
from cotlens.io.figures import FigureFiles, Inputs, save

PAPER = "paper, 5x5: Llama-2-13B 0.13 -> 0.43, Mistral-7B 0.22 -> 0.55"


def digit_confidence(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
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


def digit_conditioning(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
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


def digit_accuracy(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
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
    "digit_confidence": digit_confidence,
    "digit_conditioning": digit_conditioning,
    "digit_accuracy": digit_accuracy,
}
