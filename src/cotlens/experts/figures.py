"""Study 4 figures (MoTE / fTRI): the expert map, switching, and the quality guard.

Each figure reads Parquet only, writes PNG + PDF, and a JSON of the numbers in its title.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from cotlens.core.verdicts import ALPHA, COLLAPSE
from cotlens.experts.analysis import (
    GUARD,
    competence,
    outcomes,
    quality_summary,
    switch_headline,
    switch_summary,
    switch_verdicts,
)
from cotlens.io.figures import FigureFiles, Inputs, save
from cotlens.io.parquet import read_table


def expert_map(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    ftri = inputs["ftri"]
    f = read_table(ftri).to_pandas()
    contrasts = [c for c in ("all", "events", "instructions") if c in set(f["contrast"])]
    fig, axes = plt.subplots(1, len(contrasts), figsize=(4.2 * len(contrasts), 3.6), squeeze=False)
    top: dict[str, list[str]] = {}
    rows: list[dict[str, Any]] = []  # the report's table: the top 10 experts per contrast
    for ax, c in zip(axes[0], contrasts, strict=True):
        g = f[f["contrast"] == c]
        m = g.pivot(index="layer", columns="expert", values="score").sort_index()
        lim = float(np.abs(m.values).max()) or 1.0
        im = ax.imshow(m.values, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", origin="lower")
        best = g.sort_values("rank").head(5)
        top[c] = [f"L{r.layer}E{r.expert} {r.score:+.2f}" for r in best.itertuples()]
        rows += [
            {
                "contrast": c,
                "rank": int(r.rank) + 1,
                "expert": f"L{r.layer}E{r.expert}",
                "fTRI": round(float(r.score), 4),
                "freq behaviour": round(float(r.freq_behaviour), 4),
                "freq other": round(float(r.freq_other), 4),
            }
            for r in g.sort_values("rank").head(10).itertuples()
        ]
        for r in best.itertuples():
            ax.text(r.expert, r.layer, str(r.rank + 1), ha="center", va="center", fontsize=7)
        n_b, n_o = int(g["n_behaviour"].iloc[0]), int(g["n_other"].iloc[0])
        ax.set(
            title=f"{c}: {n_b} behaviour vs {n_o} other map prompts",
            xlabel="expert",
            ylabel="layer",
            yticks=range(len(m.index)),
            yticklabels=[str(i) for i in m.index],
        )
        fig.colorbar(im, ax=ax, shrink=0.8, label="fTRI: selection freq., behaviour - other")
    fig.suptitle(
        f"{model}: expert selection on the map prompts, behaviour minus other class "
        f"(numbers: top-5 rank; the switches are measured on held-out prompts)",
        fontsize=9,
    )
    fig.tight_layout()
    save(fig, outputs, dpi)
    return {"top5": top, "top_experts_table": rows}


def _k_axis(ax: plt.Axes, ks: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(ks)), [str(k) for k in sorted(set(ks))])
    ax.minorticks_off()


def _label(cond: str, mode: str) -> str:
    return "baseline" if cond == "baseline" else f"{cond} {mode}"


def expert_switch(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    runs, prompts = inputs["effects"], inputs["prompts"]
    r = read_table(runs).to_pandas()
    s = switch_summary(r, read_table(prompts).to_pandas())
    q = quality_summary(r)
    coll = {(x.condition, x.mode, x.k): bool(x.collapsed) for x in q.itertuples()}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    base = s[s["condition"] == "baseline"]
    styles = {
        ("top", "off"): ("C3", "o", "-"),
        ("random", "off"): ("C3", "s", ":"),
        ("top", "on"): ("C0", "o", "-"),
        ("random", "on"): ("C0", "s", ":"),
    }
    for ax, el in zip(axes, (True, False), strict=True):
        b = base[base["elicits"] == el]
        if len(b):
            ax.axhline(float(b["rate"].iloc[0]), color="k", lw=1, label="no switch")
            ax.axhspan(float(b["lo"].iloc[0]), float(b["hi"].iloc[0]), color="k", alpha=0.08)
        for (cond, mode), (col, mk, ls) in styles.items():
            g = s[(s["condition"] == cond) & (s["mode"] == mode) & (s["elicits"] == el)].sort_values("k")
            if g.empty:
                continue
            ax.errorbar(
                g["k"],
                g["rate"],
                yerr=[g["rate"] - g["lo"], g["hi"] - g["rate"]],
                color=col,
                marker=mk,
                ls=ls,
                capsize=3,
                label=_label(cond, mode),
            )
            bad = g[[coll.get((cond, mode, int(k)), False) for k in g["k"]]]
            ax.scatter(
                bad["k"],
                bad["rate"],
                s=160,
                facecolors="none",
                edgecolors="k",
                lw=1.2,
                zorder=5,
                label="collapsed (quality guard)" if (cond, mode) == ("top", "off") else None,
            )
        n = int(s[s["elicits"] == el]["n"].min()) if len(s[s["elicits"] == el]) else 0
        ax.set(
            xlabel="experts switched (k)",
            ylim=(-0.03, 1.03),
            title=f"{'refusal-eliciting' if el else 'control'} prompts (held out, {n} per condition)",
        )
        _k_axis(ax, [int(k) for k in s["k"] if k > 0])
    axes[0].set_ylabel("fluent refusals (95% Wilson CI)")
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    axes[1].legend(handles, labels, fontsize=7)
    st = outcomes(r, read_table(prompts).to_pandas())
    verdicts = switch_verdicts(st, q, quality_summary(r, per_set=True))
    h = switch_headline(verdicts, competence(st))
    fig.suptitle(h.title(model), fontsize=8)
    fig.tight_layout()
    drawn = save(fig, outputs, dpi)
    assert h.verdict != COLLAPSE or any(x["top_collapsed"] for x in verdicts.values())
    return {
        "headline": h.to_json(),
        "drawn_titles": drawn,
        "verdicts": verdicts,
        "guard": GUARD,
        "alpha": ALPHA,
        "rates": {
            f"{_label(x.condition, x.mode)} k={x.k} {'eliciting' if x.elicits else 'control'}": round(x.rate, 4)
            for x in s.itertuples()
        },
    }


def expert_quality(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    runs = inputs["effects"]
    q = quality_summary(read_table(runs).to_pandas())
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    base = q[q["condition"] == "baseline"]
    for cond, mode, col, ls in (
        ("top", "off", "C3", "-"),
        ("random", "off", "C3", ":"),
        ("top", "on", "C0", "-"),
        ("random", "on", "C0", ":"),
    ):
        g = q[(q["condition"] == cond) & (q["mode"] == mode)].sort_values("k")
        if len(g):
            axes[0].errorbar(
                g["k"],
                g["accuracy"],
                yerr=[g["accuracy"] - g["lo"], g["hi"] - g["accuracy"]],
                color=col,
                ls=ls,
                marker="o",
                capsize=3,
                label=_label(cond, mode),
            )
            axes[1].plot(g["k"], g["perplexity"], color=col, ls=ls, marker="o", label=_label(cond, mode))
            bad = g[g["collapsed"]]
            axes[1].scatter(
                bad["k"],
                bad["perplexity"],
                s=160,
                facecolors="none",
                edgecolors="k",
                zorder=5,
                label="collapsed" if (cond, mode) == ("top", "off") else None,
            )
    if len(base):
        axes[0].axhline(float(base["accuracy"].iloc[0]), color="k", lw=1, label="no switch")
        axes[1].axhline(float(base["perplexity"].iloc[0]), color="k", lw=1, label="no switch")
    axes[0].set(xlabel="experts switched (k)", ylabel="accuracy, simple questions", ylim=(-0.03, 1.03))
    axes[1].set(xlabel="experts switched (k)", ylabel="held-out perplexity", yscale="log")
    for ax in axes:
        _k_axis(ax, [int(k) for k in q["k"] if k > 0])
    axes[1].legend(fontsize=7)
    b = base.iloc[0] if len(base) else None
    if b is not None:
        n_coll = int(q["collapsed"].sum())
        fig.suptitle(
            f"{model}: quality guard (no switch: accuracy {b['accuracy']:.2f}, perplexity "
            f"{b['perplexity']:.2f}); {n_coll} of {len(q) - 1} switched conditions collapsed (circled)",
            fontsize=9,
        )
    fig.tight_layout()
    save(fig, outputs, dpi)
    data = {
        f"{_label(r.condition, r.mode)} k={r.k}": {
            "accuracy": round(r.accuracy, 4),
            "perplexity": round(r.perplexity, 4),
            "broken": round(r.broken, 4),
            "collapsed": bool(r.collapsed),
        }
        for r in q.itertuples()
    }
    return {"guard": GUARD, "conditions": data}


FIGURES = {"expert_map": expert_map, "expert_switch": expert_switch, "expert_quality": expert_quality}
