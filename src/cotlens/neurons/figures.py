"""Study 2 figures (Rai & Yao, 2024): concept neurons, their ablation, activation vs accuracy.

Each figure writes PNG + PDF and a JSON of the numbers its caption quotes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cotlens.core.stats import wilson
from cotlens.core.verdicts import (
    DESCRIPTIVE,
    INCONCLUSIVE,
    REPRODUCED,
    REVERSED,
    Gate,
    Headline,
    headline,
    judge,
    paired_ci,
    pearson_ci,
    proportion_ci,
)
from cotlens.io.figures import FigureFiles, Inputs, save
from cotlens.io.parquet import read_table
from cotlens.neurons.findings import CLAIMS

MIN_SOLVED = 5  # a drop is measurable: losing all of 5 solved problems is p = 0.5**5 = 0.031 (exact sign test)
MIN_RANDOM_SETS = 20  # random neuron sets per ablated set
PRIMARY_MODE = "noise"  # the paper's ablation (Rai & Yao add noise to the value vectors)


def competence(runs: pd.DataFrame) -> Gate:
    """Enough problems solved on the full CoT prompt (no ablation) to measure a drop."""
    base = runs[(runs["variant"] == "full") & (runs["condition"] == "variant")]["correct"].astype(bool)
    if base.empty:
        return Gate("full-prompt accuracy", None, "no full-prompt run")
    k, n = int(base.sum()), len(base)
    lo, hi = proportion_ci(k, n)
    return Gate(
        "full-prompt accuracy",
        k >= MIN_SOLVED,
        f"{k}/{n} problems solved [{lo:.2f}, {hi:.2f}] (needs {MIN_SOLVED} to measure a drop)",
    )


def ablation_headline(runs: pd.DataFrame) -> Headline:
    """The claim's primary comparison: the concept set noise-ablated (the paper's ablation;
    the first mode when noise was not run) against as many random neurons, paired by problem."""
    claim = CLAIMS["neuron_ablation"]
    full = runs[(runs["variant"] == "full") & (runs["condition"] != "variant")]
    modes = sorted(set(full.loc[full["condition"] == "concept", "mode"]))
    gate = competence(runs)
    if not modes:
        return headline(claim, "no concept set ablated", float("nan"), None, "0 problems", gates=[gate])
    mode = PRIMARY_MODE if PRIMARY_MODE in modes else modes[0]
    con = full[(full["condition"] == "concept") & (full["mode"] == mode)]
    n_abl = int(con["n_ablated"].max())
    con = con[con["n_ablated"] == n_abl].set_index("problem_id")["correct"].astype(float)
    rnd = full[(full["condition"] == "random") & (full["mode"] == mode) & (full["n_ablated"] == n_abl)]
    sets = int(rnd["seed"].nunique())
    r = rnd.groupby("problem_id")["correct"].mean().reindex(con.index)
    d, lo, hi = paired_ci(con.to_numpy(), r.to_numpy())
    set_gate = Gate(
        "random sets", sets >= MIN_RANDOM_SETS, f"{sets} random sets per ablated set (needs {MIN_RANDOM_SETS})"
    )
    return headline(
        claim,
        f"{n_abl} concept neurons {mode}-ablated: accuracy {con.mean():.2f} vs {r.mean():.2f} with random neurons, "
        f"difference {d:+.2f}",
        d,
        (lo, hi),
        f"{len(con)} problems",
        gates=[gate, set_gate],
    )


def ablation_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and 95% CI per (condition, mode, n_ablated) on the full variant.

    Concept, top-n and baseline: Wilson interval over problems. Random: mean over seeds,
    with the interval over problems x seeds pooled (Wilson) and the seeds' spread."""
    full = runs[runs["variant"] == "full"]
    base = full[full["condition"] == "variant"]
    rows = [
        {
            "condition": "none",
            "mode": "none",
            "n_ablated": 0,
            "acc": base["correct"].mean(),
            "n": len(base),
            "ci": wilson(base["correct"].sum(), len(base)),
            "seed_sd": 0.0,
        }
    ]
    abl = full[full["condition"] != "variant"]
    order = {"concept": 0, "top": 1, "random": 2}
    for (mode, n_abl, cond), g in sorted(
        abl.groupby(["mode", "n_ablated", "condition"]), key=lambda kv: (kv[0][0], kv[0][1], order[kv[0][2]])
    ):
        per_seed = g.groupby("seed")["correct"].mean()
        rows.append(
            {
                "condition": cond,
                "mode": mode,
                "n_ablated": int(n_abl),
                "acc": g["correct"].mean(),
                "n": len(g),
                "ci": wilson(g["correct"].sum(), len(g)),
                "seed_sd": float(per_seed.std(ddof=0)),
            }
        )
    return pd.DataFrame(rows)


def ablation_verdicts(runs: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per (ablated set, mode): accuracy with the set ablated minus the mean accuracy with
    as many random neurons ablated (over seeds), paired by problem, t 95% interval; the
    paper's claim is a negative difference (the verdict without the study's gates: the
    headline, ``ablation_headline``, is the claim's)."""
    full = runs[(runs["variant"] == "full") & (runs["condition"] != "variant")]
    out: dict[str, dict[str, Any]] = {}
    for (cond, mode, n), g in full[full["condition"].isin(["concept", "top"])].groupby(
        ["condition", "mode", "n_ablated"]
    ):
        rnd = full[(full["condition"] == "random") & (full["mode"] == mode) & (full["n_ablated"] == n)]
        if rnd.empty:
            continue
        r = rnd.groupby("problem_id")["correct"].mean()
        t = g.set_index("problem_id")["correct"].astype(float)
        both = t.index.intersection(r.index)
        d, lo, hi = paired_ci(r.loc[both].to_numpy(), t.loc[both].to_numpy())
        key = f"{cond} {int(n)} {mode} - random"
        out[key] = {
            "difference": round(d, 4),
            "ci95": [round(lo, 4), round(hi, 4)],
            "n": int(len(both)),
            "random_seeds": int(rnd["seed"].nunique()),
            "verdict": judge(replace(CLAIMS["neuron_ablation"], expected=-1), d, (lo, hi))[0],
        }
    return out


def _key(cond: str, mode: str, n: int, n_concept: int) -> str:
    """JSON key of a summary row: concept/zero, random/zero (as many as the concept set),
    top300/zero, random300/zero (the larger sets)."""
    if cond == "none":
        return "none/none"
    return f"{cond}/{mode}" if cond == "concept" or n == n_concept else f"{cond}{n}/{mode}"


def ablation(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
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


def variant_summary(runs: pd.DataFrame) -> pd.DataFrame:
    v = runs[runs["condition"] == "variant"]
    return v.groupby("variant", sort=False).agg(
        acc=("correct", "mean"), act=("concept_active", "mean"), mean_act=("concept_act", "mean"), n=("correct", "size")
    )


# The paper's four findings about CoT variants (Rai & Yao 2024, section 5), as
# (name, variants, expected): "hurts" is judged as a claimed drop with the smallest effect
# BARELY (cotlens.core.verdicts.judge); "barely matters" is reproduced when the whole paired
# 95% interval lies within +-BARELY (an equivalence test, not a point estimate), reversed
# when it lies outside, otherwise inconclusive.
PHENOMENA = (
    ("formula removed hurts", ("text_only",), "hurts"),
    ("text removed hurts", ("formula_only",), "hurts"),
    ("a single operator hurts", ("add_only", "mul_only"), "hurts"),
    ("wrong results barely matter", ("wrong_results",), "barely matters"),
)
BARELY = 0.1


def phenomena(runs: pd.DataFrame) -> list[dict[str, Any]]:
    """Accuracy change from ``full`` per finding, paired by problem (bootstrap 95% CI), and
    whether the paper's finding holds on this run."""
    v = runs[runs["condition"] == "variant"].pivot_table(index="problem_id", columns="variant", values="correct")
    out: list[dict[str, Any]] = []
    if "full" not in v.columns:
        return out
    for name, variants, expected in PHENOMENA:
        have = [x for x in variants if x in v.columns]
        if not have:
            continue
        other = v[have].astype(float).mean(axis=1)  # one operator: the mean of + only and x only, per problem
        delta, lo, hi = paired_ci(v["full"].astype(float).to_numpy(), other.to_numpy())
        if expected == "hurts":
            v_ = judge(replace(CLAIMS["neuron_ablation"], expected=-1, sesoi=BARELY), delta, (lo, hi))[0]
        elif not (np.isfinite(lo) and np.isfinite(hi)):
            v_ = INCONCLUSIVE
        elif -BARELY < lo and hi < BARELY:
            v_ = REPRODUCED
        else:
            v_ = REVERSED if lo >= BARELY or hi <= -BARELY else INCONCLUSIVE
        out.append(
            {
                "finding": name,
                "variants": have,
                "delta": round(delta, 3),
                "ci95": [round(lo, 3), round(hi, 3)],
                "n": int(len(other)),
                "verdict": v_,
                "holds": v_ == "reproduced",
            }
        )
    return out


def activation_accuracy(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
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


def concepts(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
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


FIGURES = {"neuron_concepts": concepts, "neuron_ablation": ablation, "neuron_activation": activation_accuracy}
