"""Study 2 figures (Rai & Yao, 2024): concept neurons, their ablation, activation vs accuracy.

Each figure writes PNG + PDF and a JSON of the numbers its caption quotes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cotlens.parquet import read_table
from cotlens.plotting.base import save, save_json
from cotlens.stats import wilson

Paths = Sequence[str | os.PathLike[str]]


def ablation_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and 95% CI per (condition, mode) on the full variant.

    Concept and baseline: Wilson interval over problems. Random: mean over seeds, with
    the interval over problems x seeds pooled (Wilson) and the seeds' spread."""
    full = runs[runs["variant"] == "full"]
    base = full[full["condition"] == "variant"]
    rows = [{"condition": "none", "mode": "none", "acc": base["correct"].mean(), "n": len(base),
             "ci": wilson(base["correct"].sum(), len(base)), "seed_sd": 0.0}]  # fmt: skip
    for (cond, mode), g in full[full["condition"] != "variant"].groupby(["condition", "mode"]):
        per_seed = g.groupby("seed")["correct"].mean()
        rows.append({"condition": cond, "mode": mode, "acc": g["correct"].mean(), "n": len(g),
                     "ci": wilson(g["correct"].sum(), len(g)), "seed_sd": float(per_seed.std(ddof=0))})  # fmt: skip
    return pd.DataFrame(rows)


def ablation(runs: str | os.PathLike[str], neurons: str | os.PathLike[str], outputs: Paths, model: str,
             dpi: int = 150) -> pd.DataFrame:  # fmt: skip
    df = read_table(runs).to_pandas()
    s = ablation_summary(df)
    n_abl = int(df.loc[df["condition"] == "concept", "n_ablated"].max()) if (df["condition"] == "concept").any() else 0
    fig, ax = plt.subplots(figsize=(6, 3.6))
    labels = [f"{c}\n{m}" if c != "none" else "no ablation" for c, m in zip(s["condition"], s["mode"], strict=True)]
    colors = ["grey" if c == "none" else "tab:red" if c == "concept" else "tab:blue" for c in s["condition"]]
    err = np.array([[a - lo, hi - a] for a, (lo, hi) in zip(s["acc"], s["ci"], strict=True)]).T
    ax.bar(range(len(s)), s["acc"], color=colors, yerr=err, capsize=4)
    ax.set_xticks(range(len(s)), labels, fontsize=8)
    ax.set_ylabel("accuracy (full CoT prompts)")
    ax.set_ylim(0, 1)
    acc = {f"{c}/{m}": float(a) for c, m, a in zip(s["condition"], s["mode"], s["acc"], strict=True)}
    parts = [f"{m} {acc.get(f'concept/{m}', float('nan')):.2f} vs random {acc.get(f'random/{m}', float('nan')):.2f}"
             for m in sorted({m for c, m in zip(s["condition"], s["mode"], strict=True) if c == "concept"})]  # fmt: skip
    ax.set_title(f"{model}: accuracy {acc['none/none']:.2f}; {n_abl} concept neurons ablated: " + "; ".join(parts)
                 + " (95% CI)", fontsize=8)  # fmt: skip
    save(fig, outputs, dpi)
    save_json(outputs, {"n_ablated": n_abl, **{f"{c}/{m}": round(float(a), 3)
                                          for c, m, a in zip(s["condition"], s["mode"], s["acc"], strict=True)}})  # fmt: skip
    return s


def variant_summary(runs: pd.DataFrame) -> pd.DataFrame:
    v = runs[runs["condition"] == "variant"]
    return v.groupby("variant", sort=False).agg(
        acc=("correct", "mean"), act=("concept_act", "mean"), n=("correct", "size")
    )


def activation_accuracy(runs: str | os.PathLike[str], neurons: str | os.PathLike[str], outputs: Paths, model: str,
                        dpi: int = 150) -> pd.DataFrame:  # fmt: skip
    s = variant_summary(read_table(runs).to_pandas())
    r = float(np.corrcoef(s["act"], s["acc"])[0, 1]) if len(s) > 2 and s["acc"].std() > 0 else float("nan")
    fig, ax = plt.subplots(figsize=(5.2, 4))
    ax.scatter(s["act"], s["acc"])
    for name, row in s.iterrows():
        ax.annotate(str(name), (row["act"], row["acc"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("concept neurons' mean activation at generated tokens")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{model}: activation vs accuracy across CoT variants (Pearson r = {r:.2f})", fontsize=9)
    save(fig, outputs, dpi)
    full = s.loc["full", "acc"] if "full" in s.index else float("nan")
    delta = {k: round(float(s.loc[k, "acc"] - full), 3) for k in s.index if k != "full"}
    save_json(outputs, {"pearson_r": None if np.isnan(r) else round(r, 3), "accuracy_minus_full": delta,
                    "accuracy": {k: round(float(v), 3) for k, v in s["acc"].items()}})  # fmt: skip
    return s


def concepts(runs: str | os.PathLike[str], neurons: str | os.PathLike[str], outputs: Paths, model: str,
             dpi: int = 150) -> pd.DataFrame:  # fmt: skip
    n = read_table(neurons).to_pandas()
    cand = n[n["rank"] >= 0]
    lab = cand[cand["concept"].notna()]
    n_layers = int(n["layer"].max()) + 1
    table = lab.groupby(["layer", "concept"]).size().unstack(fill_value=0).reindex(range(n_layers), fill_value=0)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bottom = np.zeros(n_layers)
    for c in table.columns:
        ax.bar(range(n_layers), table[c], bottom=bottom, label=c)
        bottom += table[c].to_numpy()
    ax.set_xlabel("layer")
    ax.set_ylabel("concept neurons")
    ax.set_title(f"{model}: {len(lab)} of {len(cand)} candidate neurons carry a concept", fontsize=9)
    if len(table.columns):
        ax.legend(fontsize=7, ncol=4)
    save(fig, outputs, dpi)
    top = lab.sort_values("rank").head(8)
    save_json(outputs, {"candidates": len(cand), "concept_neurons": len(lab),
                    "by_concept": {str(k): int(v) for k, v in lab["concept"].value_counts().items()},
                    "examples": [f"L{r.layer}N{r.neuron} {r.concept}: {' '.join(r.top_tokens[:5])}"
                                 for r in top.itertuples()]})  # fmt: skip
    return table
