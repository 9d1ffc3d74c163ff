"""Study 4 figures (MoTE / fTRI): the expert map, switching, and the quality guard.

Each figure reads Parquet only, writes PNG + PDF, and a JSON of the numbers in its title.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cotlens.parquet import read_table
from cotlens.plotting.base import save, save_json
from cotlens.stats import wilson

Paths = Sequence[str | os.PathLike[str]]
PathLike = str | os.PathLike[str]


def switch_summary(runs: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """Refusal rate with a 95% Wilson interval per (condition, mode, k, prompt set).

    ``elicits`` True is the behaviour set (should be refused), False the control set.
    Random conditions pool their seeds (the interval is over prompts x seeds) and give
    the spread of the per-seed rates as ``seed_sd``."""
    st = runs[runs["set"] == "study"].merge(prompts[["prompt_id", "elicits"]], on="prompt_id")
    rows = []
    for (cond, mode, k, el), g in st.groupby(["condition", "mode", "k", "elicits"]):
        per_seed = g.groupby("seed")["refused"].mean()
        lo, hi = wilson(float(g["refused"].sum()), len(g))
        rows.append({"condition": cond, "mode": mode, "k": int(k), "elicits": bool(el), "rate": float(g["refused"].mean()),
                     "lo": lo, "hi": hi, "n": len(g), "seed_sd": float(per_seed.std(ddof=0))})  # fmt: skip
    return pd.DataFrame(rows)


def quality_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Quality-question accuracy (Wilson 95%) and reference perplexity per (condition, mode, k)."""
    rows = []
    for (cond, mode, k), g in runs.groupby(["condition", "mode", "k"]):
        q, r = g[g["set"] == "quality"], g[g["set"] == "reference"]
        lo, hi = wilson(float(q["correct"].sum()), len(q))
        ppl = math.exp(r["nll"].sum() / max(1, r["n_tokens"].sum())) if len(r) else float("nan")
        rows.append({"condition": cond, "mode": mode, "k": int(k), "accuracy": float(q["correct"].mean()) if len(q)
                     else float("nan"), "lo": lo, "hi": hi, "perplexity": ppl})  # fmt: skip
    return pd.DataFrame(rows)


def expert_map(ftri: PathLike, runs: PathLike, prompts: PathLike, outputs: Paths, model: str, dpi: int = 150) -> None:
    f = read_table(ftri).to_pandas()
    contrasts = [c for c in ("all", "events", "instructions") if c in set(f["contrast"])]
    fig, axes = plt.subplots(1, len(contrasts), figsize=(4.2 * len(contrasts), 3.6), squeeze=False)
    top: dict[str, list[str]] = {}
    for ax, c in zip(axes[0], contrasts, strict=True):
        g = f[f["contrast"] == c]
        m = g.pivot(index="layer", columns="expert", values="score").sort_index()
        lim = float(np.abs(m.values).max()) or 1.0
        im = ax.imshow(m.values, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", origin="lower")
        best = g.sort_values("rank").head(5)
        top[c] = [f"L{r.layer}E{r.expert} {r.score:+.2f}" for r in best.itertuples()]
        for r in best.itertuples():
            ax.text(r.expert, r.layer, str(r.rank + 1), ha="center", va="center", fontsize=7)
        n_b, n_o = int(g["n_behaviour"].iloc[0]), int(g["n_other"].iloc[0])
        ax.set(title=f"{c}: {n_b} refused vs {n_o}", xlabel="expert", ylabel="layer",
               yticks=range(len(m.index)), yticklabels=[str(i) for i in m.index])  # fmt: skip
        fig.colorbar(im, ax=ax, shrink=0.8, label="fTRI (freq. refused - answered)")
    fig.suptitle(f"{model}: expert selection, refused minus answered responses (numbers: top-5 rank)", fontsize=9)
    fig.tight_layout()
    save(fig, outputs, dpi)
    save_json(outputs, {"top5": top})


def _k_axis(ax: plt.Axes, ks: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(ks)), [str(k) for k in sorted(set(ks))])
    ax.minorticks_off()


def _label(cond: str, mode: str) -> str:
    return "baseline" if cond == "baseline" else f"{cond} {mode}"


def expert_switch(
    ftri: PathLike, runs: PathLike, prompts: PathLike, outputs: Paths, model: str, dpi: int = 150
) -> None:
    s = switch_summary(read_table(runs).to_pandas(), read_table(prompts).to_pandas())
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    base = s[s["condition"] == "baseline"]
    styles = {("top", "off"): ("C3", "o", "-"), ("random", "off"): ("C3", "s", ":"),
              ("top", "on"): ("C0", "o", "-"), ("random", "on"): ("C0", "s", ":")}  # fmt: skip
    for ax, el in zip(axes, (True, False), strict=True):
        b = base[base["elicits"] == el]
        if len(b):
            ax.axhline(float(b["rate"].iloc[0]), color="k", lw=1, label="no switch")
            ax.axhspan(float(b["lo"].iloc[0]), float(b["hi"].iloc[0]), color="k", alpha=0.08)
        for (cond, mode), (col, mk, ls) in styles.items():
            g = s[(s["condition"] == cond) & (s["mode"] == mode) & (s["elicits"] == el)].sort_values("k")
            if len(g):
                ax.errorbar(g["k"], g["rate"], yerr=[g["rate"] - g["lo"], g["hi"] - g["rate"]], color=col, marker=mk,
                            ls=ls, capsize=3, label=_label(cond, mode))  # fmt: skip
        ax.set(xlabel="experts switched (k)", ylim=(-0.03, 1.03),
               title="refusal-eliciting prompts" if el else "control prompts")  # fmt: skip
        _k_axis(ax, [int(k) for k in s["k"] if k > 0])
    axes[0].set_ylabel("refusal rate (95% CI)")
    axes[1].legend(fontsize=7)
    data = {f"{_label(r.condition, r.mode)} k={r.k} {'eliciting' if r.elicits else 'control'}": round(r.rate, 4)
            for r in s.itertuples()}  # fmt: skip
    kmax = int(s["k"].max())
    el = s[(s["elicits"]) & (s["k"].isin([0, kmax]))]
    get = {(r.condition, r.mode): r.rate for r in el.itertuples() if r.k in (0, kmax)}
    b0 = get.get(("baseline", "none"), float("nan"))
    fig.suptitle(f"{model}: refusals {b0:.2f} -> top-{kmax} off {get.get(('top', 'off'), float('nan')):.2f}, "
                 f"random off {get.get(('random', 'off'), float('nan')):.2f}", fontsize=9)  # fmt: skip
    fig.tight_layout()
    save(fig, outputs, dpi)
    save_json(outputs, data)


def expert_quality(
    ftri: PathLike, runs: PathLike, prompts: PathLike, outputs: Paths, model: str, dpi: int = 150
) -> None:
    q = quality_summary(read_table(runs).to_pandas())
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    base = q[q["condition"] == "baseline"]
    for cond, mode, col, ls in (("top", "off", "C3", "-"), ("random", "off", "C3", ":"), ("top", "on", "C0", "-"),
                                ("random", "on", "C0", ":")):  # fmt: skip
        g = q[(q["condition"] == cond) & (q["mode"] == mode)].sort_values("k")
        if len(g):
            axes[0].errorbar(g["k"], g["accuracy"], yerr=[g["accuracy"] - g["lo"], g["hi"] - g["accuracy"]],
                             color=col, ls=ls, marker="o", capsize=3, label=_label(cond, mode))  # fmt: skip
            axes[1].plot(g["k"], g["perplexity"], color=col, ls=ls, marker="o", label=_label(cond, mode))
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
        fig.suptitle(f"{model}: quality guard (no switch: accuracy {b['accuracy']:.2f}, perplexity "
                     f"{b['perplexity']:.2f})", fontsize=9)  # fmt: skip
    fig.tight_layout()
    save(fig, outputs, dpi)
    save_json(outputs, {f"{_label(r.condition, r.mode)} k={r.k}": {"accuracy": round(r.accuracy, 4),
                    "perplexity": round(r.perplexity, 4)} for r in q.itertuples()})  # fmt: skip


FIGURES = {"expert_map": expert_map, "expert_switch": expert_switch, "expert_quality": expert_quality}
