"""Study 1 figures (Dutta et al., 2024): patching heatmaps, attribution vs exact, circuit
sufficiency, the rift, answer-writing heads, relation probing and parallel pathways.
Each reads Parquet only and returns the numbers its title reports."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from cotlens.parquet import read_table
from cotlens.plotting.base import save
from cotlens.stats import spearman

Paths = Sequence[str | os.PathLike[str]]
Inputs = Mapping[str, str]
SUBTASKS = ("decision", "copy", "induction")


def _pairs(inputs: Inputs) -> pd.DataFrame:
    return read_table(inputs["pairs"]).to_pandas()


def swept(patch: pd.DataFrame) -> pd.DataFrame:
    """Exact all-position rows of the pairs whose every head was patched."""
    ex = patch[(patch["method"] == "exact") & (patch["pos"] == -1)]
    n = ex.groupby("pair_id").size()
    return ex[ex["pair_id"].isin(n[n == n.max()].index)] if len(n) else ex


def _grid(df: pd.DataFrame, value: str) -> pd.DataFrame:
    return df.groupby(["layer", "head"])[value].mean().unstack("head").sort_index()


def _top(grid: pd.DataFrame, n: int = 3) -> list[str]:
    s = grid.stack().sort_values(ascending=False, kind="mergesort")
    return [f"L{la}H{h}" for la, h in s.index[:n]]


def patch_heads(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    ex = swept(read_table(inputs["patching"]).to_pandas()).merge(_pairs(inputs)[["pair_id", "subtask"]], on="pair_id")
    subs = [s for s in SUBTASKS if (ex["subtask"] == s).any()]
    fig, axes = plt.subplots(1, max(1, len(subs)), figsize=(5.4 * max(1, len(subs)), 5), squeeze=False)
    out: dict[str, Any] = {}
    for ax, s in zip(axes[0], subs, strict=False):
        g = _grid(ex[ex["subtask"] == s], "nkl")
        sns.heatmap(g, ax=ax, cmap="RdBu_r", center=0, cbar_kws={"label": "normalised KL"})
        ax.invert_yaxis()
        out[s] = _top(g)
        n = ex[ex["subtask"] == s]["pair_id"].nunique()
        ax.set_title(f"{s} (n={n})\ntop: {', '.join(out[s])}", fontsize=9)
    fig.suptitle(f"{model}: exact per-head patching, all positions")
    fig.tight_layout()
    save(fig, outputs, dpi)
    return out


def patch_positions(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    p = read_table(inputs["patching"]).to_pandas()
    pairs = _pairs(inputs).set_index("pair_id")
    pp = p[(p["method"] == "exact") & (p["pos"] >= 0)].copy()
    length = pairs["clean_ids"].map(len)
    pp["where"] = [
        "corrupted" if pos == pairs.at[pid, "corrupt_pos"] else f"last-{int(length[pid]) - 1 - pos}"
        for pid, pos in zip(pp["pair_id"], pp["pos"], strict=True)
    ]
    g = pp.groupby(["where", "layer"])["nkl"].max().unstack("layer")
    fig, ax = plt.subplots(figsize=(9, 3.5))
    sns.heatmap(g, ax=ax, cmap="RdBu_r", center=0, cbar_kws={"label": "max over heads of normalised KL"})
    ax.set_title(f"{model}: per-position patching (max over heads)")
    save(fig, outputs, dpi)
    return {}


def attribution(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    p = read_table(inputs["patching"]).to_pandas()
    p = p[p["pos"] == -1]
    ex = p[p["method"] == "exact"].set_index(["pair_id", "layer", "head"])["nkl"]
    at = p[p["method"] == "attribution"].set_index(["pair_id", "layer", "head"])["nkl"]
    j = pd.concat({"exact": ex, "attribution": at}, axis=1).dropna()
    rho = spearman(j["attribution"].tolist(), j["exact"].tolist())
    per_pair = [spearman(g["attribution"].tolist(), g["exact"].tolist()) for _, g in j.groupby(level=0)]
    med = float(np.nanmedian(per_pair)) if per_pair else float("nan")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(j["attribution"], j["exact"], s=6, alpha=0.5)
    lim = [min(j.min().min(), 0), max(j.max().max(), 0.05)]
    ax.plot(lim, lim, color="grey", lw=0.8)
    ax.set_xlabel("attribution estimate")
    ax.set_ylabel("exact normalised KL")
    ax.set_title(f"{model}: Spearman {rho:.2f} pooled, median per pair {med:.2f}", fontsize=9)
    save(fig, outputs, dpi)
    return {"spearman_pooled": rho, "spearman_median_per_pair": med}


def sufficiency(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    c = read_table(inputs["circuit"]).to_pandas()
    curve = c.groupby(["random", "k"])["agree"].mean().unstack("random")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(curve.index, curve[False], marker="o", label="top-k heads by patching")
    ax.plot(curve.index, curve[True], marker="s", ls="--", label="k random heads")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("heads kept (others mean-ablated)")
    ax.set_ylabel("agreement with the clean argmax")
    ax.set_ylim(0, 1.02)
    ax.legend()
    out = {int(k): round(float(v), 3) for k, v in curve[False].items()}
    ax.set_title(f"{model}: " + ", ".join(f"k={k}: {v:.2f}" for k, v in list(out.items())[-4:]), fontsize=8)
    save(fig, outputs, dpi)
    return {"top": out, "random": {int(k): round(float(v), 3) for k, v in curve[True].items()}}


def rift_layer(frac: Sequence[float]) -> int:
    """The split s maximising mean(frac[s:]) - mean(frac[:s]): where "prior" turns to "context"."""
    f = np.asarray(frac, dtype=float)
    best, where = -np.inf, len(f) // 2
    for s in range(1, len(f)):
        gain = f[s:].mean() - f[:s].mean()
        if gain > best:
            best, where = gain, s
    return int(where)


def rift(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    h = read_table(inputs["heads"]).to_pandas()
    frac = h.groupby("layer")["in_context"].mean()
    s = rift_layer(frac.tolist())
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(frac.index, frac.values, marker="o")
    ax.axvline(s - 0.5, color="crimson", ls="--", label=f"rift: block {s} of {len(frac)}")
    ax.set_xlabel("layer")
    ax.set_ylabel('fraction of heads reading "context"')
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(f"{model}: head logit lens, top token in the prompt vs not", fontsize=9)
    save(fig, outputs, dpi)
    return {"rift_layer": s, "n_layers": len(frac), "context_fraction": [round(float(v), 3) for v in frac]}


def answer_heads(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    h = read_table(inputs["heads"]).to_pandas()
    g = _grid(h, "dla")
    top = _top(g, 5)
    fig, ax = plt.subplots(figsize=(6, 5))
    sns.heatmap(g, ax=ax, cmap="RdBu_r", center=0, cbar_kws={"label": "DLA: logit[answer] - logit[replacement]"})
    ax.invert_yaxis()
    mass = g.clip(lower=0)
    late = float(mass.iloc[len(g) // 2 :].to_numpy().sum() / max(mass.to_numpy().sum(), 1e-12))
    ax.set_title(
        f"{model}: answer-writing heads, top {', '.join(top)}\n{late:.0%} of positive DLA in the upper half", fontsize=9
    )
    save(fig, outputs, dpi)
    return {"top": top, "upper_half_share": late}


def probe(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    p = read_table(inputs["probe"]).to_pandas()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for split, g in p.groupby("split"):
        ax.plot(g["layer"], g["accuracy"], marker="o", label=f"{split} (n={int(g['n'].iloc[0])})")
    ax.axhline(float(p["majority"].iloc[0]), color="grey", ls=":", label="majority class")
    test = p[p["split"] == "test"].set_index("layer")["accuracy"]
    best = int(test.idxmax())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("layer")
    ax.set_ylabel("accuracy (related / negated / unrelated)")
    ax.legend()
    ax.set_title(f"{model}: relation probe, best held-out {test.max():.2f} at layer {best}", fontsize=9)
    save(fig, outputs, dpi)
    return {"best_layer": best, "best_test_accuracy": float(test.max())}


def pathways(inputs: Inputs, outputs: Paths, model: str, dpi: int = 150) -> dict[str, Any]:
    w = read_table(inputs["pathways"]).to_pandas().merge(_pairs(inputs)[["pair_id", "subtask", "corrupted_in"]])
    g = w.groupby(["corrupted_in", "positions"])["nkl"].mean().unstack("positions")
    g = g[[c for c in ("question", "cot", "context") if c in g.columns]]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    g.plot.bar(ax=ax)
    ax.set_ylabel("normalised KL recovered")
    ax.set_xlabel("where the corrupted word was")
    ax.set_title(f"{model}: all heads patched at question vs CoT positions", fontsize=9)
    save(fig, outputs, dpi)
    return {f"{a}->{b}": round(float(v), 3) for (a, b), v in g.stack().items()}


FIGURES = {
    "patch_heads": patch_heads,
    "patch_positions": patch_positions,
    "attribution": attribution,
    "sufficiency": sufficiency,
    "rift": rift,
    "answer_heads": answer_heads,
    "probe": probe,
    "pathways": pathways,
}
