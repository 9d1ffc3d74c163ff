"""Study 2 figures (Rai & Yao, 2024): concept neurons, their ablation, activation vs accuracy.

Each figure writes PNG + PDF and a JSON of the numbers its caption quotes.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from cotlens.core.verdicts import (
    DESCRIPTIVE,
    headline,
    pearson_ci,
)
from cotlens.io.figures import FigureFiles, Inputs, save
from cotlens.io.parquet import read_table
from cotlens.neurons.analysis import (
    ablation_headline,
    ablation_summary,
    ablation_verdicts,
    competence,
    phenomena,
    variant_summary,
)
from cotlens.neurons.findings import CLAIMS


def _key(cond: str, mode: str, n: int, n_concept: int) -> str:
    """JSON key of a summary row: concept/zero, random/zero (as many as the concept set),
    top300/zero, random300/zero (the larger sets)."""
    if cond == "none":
        return "none/none"
    return f"{cond}/{mode}" if cond == "concept" or n == n_concept else f"{cond}{n}/{mode}"


def neuron_ablation(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    runs = inputs["effects"]
    df = read_table(runs).to_pandas()
    s = ablation_summary(df)
    n_abl = int(df.loc[df["condition"] == "concept", "n_ablated"].max()) if (df["condition"] == "concept").any() else 0
    keys = [_key(c, m, n, n_abl) for c, m, n in zip(s["condition"], s["mode"], s["n_ablated"], strict=True)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(s)), 3.8))
    labels = [
        "no ablation" if c == "none" else f"{c} {n}\n{m}"
        for c, m, n in zip(s["condition"], s["mode"], s["n_ablated"], strict=True)
    ]
    palette = {"none": "grey", "concept": "tab:red", "top": "tab:orange", "random": "tab:blue"}
    err = np.array([[a - lo, hi - a] for a, (lo, hi) in zip(s["acc"], s["ci"], strict=True)]).T
    ax.bar(range(len(s)), s["acc"], color=[palette[c] for c in s["condition"]], yerr=err, capsize=4)
    ax.set_xticks(range(len(s)), labels, fontsize=7)
    ax.set_ylabel("accuracy (full CoT prompts)")
    ax.set_ylim(0, 1)
    acc = dict(zip(keys, (float(a) for a in s["acc"]), strict=True))
    parts = [
        f"{m} {acc.get(f'concept/{m}', float('nan')):.2f} vs random {acc.get(f'random/{m}', float('nan')):.2f}"
        for m in sorted({m for c, m in zip(s["condition"], s["mode"], strict=True) if c == "concept"})
    ]
    tops = sorted({int(n) for c, n in zip(s["condition"], s["n_ablated"], strict=True) if c == "top"})
    parts += [
        f"top {n} {m} {acc[f'top{n}/{m}']:.2f} vs random {acc.get(f'random{n}/{m}', float('nan')):.2f}"
        for n in tops
        for m in sorted(set(s["mode"]))
        if f"top{n}/{m}" in acc
    ]
    ax.set_title(
        f"{model}: accuracy {acc['none/none']:.2f}; {n_abl} concept neurons ablated:\n"
        + "; ".join(parts)
        + " (95% CI)",
        fontsize=8,
        wrap=True,
    )
    verdicts = ablation_verdicts(df)
    if verdicts:
        ax.text(
            0.01,
            -0.32,
            "; ".join(
                f"{k}: {v['difference']:+.2f} [{v['ci95'][0]:+.2f}, {v['ci95'][1]:+.2f}] {v['verdict']}"
                for k, v in verdicts.items()
            ),
            transform=ax.transAxes,
            fontsize=7,
            va="top",
            wrap=True,
        )
    h = ablation_headline(df)
    fig.suptitle(h.title(model), fontsize=8, y=1.08)
    drawn = save(fig, outputs, dpi)
    return {
        "headline": h.to_json(),
        "drawn_titles": drawn,
        "verdicts": verdicts,
        "n_ablated": n_abl,
        "n_problems": int(s.loc[0, "n"]),
        **{k: round(a, 3) for k, a in acc.items()},
        "ci95": {k: [round(lo, 3), round(hi, 3)] for k, (lo, hi) in zip(keys, s["ci"], strict=True)},
    }


def neuron_activation(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    runs = inputs["effects"]
    df = read_table(runs).to_pandas()
    s = variant_summary(df)
    r, r_lo, r_hi = pearson_ci(s["act"].to_numpy(), s["acc"].to_numpy())
    h = headline(
        CLAIMS["neuron_activation"],
        f"Pearson r = {r:+.2f} between activation level and accuracy over {len(s)} CoT variants",
        r,
        (r_lo, r_hi),
        f"{len(s)} variants x {int(s['n'].max())} problems",
        gates=[competence(df)],
    )
    found = phenomena(df)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    ax.scatter(s["act"], s["acc"])
    for name, row in s.iterrows():
        ax.annotate(str(name), (row["act"], row["acc"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("activation level: concept neurons active (> 0) per generated token")
    ax.set_ylabel(f"accuracy (n={int(s['n'].max())} problems per variant)")
    ax.set_title(h.title(model), fontsize=8, wrap=True)
    # the paper's four findings next to this run's paired changes from full
    lines = [
        f"{f['finding']}: {f['delta']:+.2f} [{f['ci95'][0]:+.2f}, {f['ci95'][1]:+.2f}] {f['verdict']}" for f in found
    ]
    if lines:
        fig.subplots_adjust(bottom=0.12 + 0.045 * len(lines))
        fig.text(0.02, 0.01, "paper vs this run (accuracy change from full, 95% CI):\n" + "\n".join(lines), fontsize=7)
    drawn = save(fig, outputs, dpi)
    full = s.loc["full", "acc"] if "full" in s.index else float("nan")
    delta = {k: round(float(s.loc[k, "acc"] - full), 3) for k in s.index if k != "full"}
    return {
        "headline": h.to_json(),
        "drawn_titles": drawn,
        "pearson_r": None if np.isnan(r) else round(r, 3),
        "pearson_ci95": [round(r_lo, 3), round(r_hi, 3)],
        "accuracy_minus_full": delta,
        "accuracy": {k: round(float(v), 3) for k, v in s["acc"].items()},
        "activation_level": {k: round(float(v), 4) for k, v in s["act"].items()},
        "mean_activation": {k: round(float(v), 4) for k, v in s["mean_act"].items()},
        "n_problems": int(s["n"].max()),
        "phenomena": found,
    }


def neuron_concepts(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    neurons = inputs["neurons"]
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
    by = ", ".join(f"{k} {v}" for k, v in sorted(lab["concept"].value_counts().items()))
    h = headline(
        CLAIMS["neuron_concepts"],
        f"{len(lab)} of {len(cand)} candidate neurons carry a concept ({by or 'none'})",
        float(len(lab)),
        None,
        f"{len(cand)} candidates",
        verdict=(DESCRIPTIVE, "what was found; no test"),
    )
    ax.set_title(h.title(model), fontsize=9)
    if len(table.columns):
        ax.legend(fontsize=7, ncol=4)
    drawn = save(fig, outputs, dpi)
    top = lab.sort_values("rank").head(8)
    return {
        "headline": h.to_json(),
        "drawn_titles": drawn,
        "candidates": len(cand),
        "concept_neurons": len(lab),
        "by_concept": {str(k): int(v) for k, v in lab["concept"].value_counts().items()},
        "examples": [f"L{r.layer}N{r.neuron} {r.concept}: {' '.join(r.top_tokens_raw[:5])}" for r in top.itertuples()],
        # the report's table: every concept neuron, by candidate rank
        "concept_neuron_table": [
            {
                "rank": int(r.rank),
                "neuron": f"L{r.layer}N{r.neuron}",
                "concept": r.concept,
                "labelled_by": r.labelled_by,
                "freq": round(float(r.freq), 4),
                "top tokens (final norm)": " ".join(map(str, r.top_tokens[:8])),
            }
            for r in lab.sort_values("rank").itertuples()
        ],
    }


FIGURES = {
    "neuron_concepts": neuron_concepts,
    "neuron_ablation": neuron_ablation,
    "neuron_activation": neuron_activation,
}
