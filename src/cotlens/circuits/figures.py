"""Study 1 figures (Dutta et al., 2024): answer and step accuracy, the logit-lens
heatmap, patching heatmaps, attribution vs exact, circuit
sufficiency, the rift, answer-writing heads, relation probing and parallel pathways.
Each reads Parquet only and returns the numbers its title reports."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import PowerNorm

from cotlens.circuits.analysis import (
    answer_heads_test,
    competence,
    head_grid,
    lens_table,
    load_scored,
    pathways_headline,
    pathways_table,
    probe_result,
    rift_headline,
    rift_readings,
    sufficiency_headline,
    sufficiency_table,
    swept,
    top_heads,
)
from cotlens.core.stats import spearman
from cotlens.core.types import SUBTASKS
from cotlens.io.figures import FigureFiles, Inputs, refused, save
from cotlens.io.parquet import read_table


def _pairs(inputs: Inputs) -> pd.DataFrame:
    return read_table(inputs["pairs"]).to_pandas()


def _no_sweep(outputs: FigureFiles, model: str, dpi: int, what: str) -> dict[str, Any]:
    """The run made no full exact sweep (``circuits.patch.exact_pairs: 0``, or no pair
    kept): the figure says so, with no axes and no number."""
    why = f"no fully swept pair in this run (circuits.patch.exact_pairs: 0, or no pair kept): no {what}"
    refused(outputs, f"{model}: {why}; set circuits.patch.exact_pairs to 1 or more to draw it", dpi)
    return {"n_pairs": 0, "not_drawn": why}


def patch_heads(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    ex = swept(read_table(inputs["patching"]).to_pandas())
    if ex.empty:
        return {**_no_sweep(outputs, model, dpi, "per-head heatmap"), "top_heads_table": []}
    subs = [s for s in SUBTASKS if (ex["subtask"] == s).any()]
    fig, axes = plt.subplots(1, max(1, len(subs)), figsize=(5.4 * max(1, len(subs)), 5), squeeze=False)
    out: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []  # the report's table: the top 10 heads per subtask (full sweeps)
    grids = {s: head_grid(ex[ex["subtask"] == s], "nkl") for s in subs}
    lim = max([float(np.nanmax(np.abs(g.to_numpy()))) for g in grids.values()] + [1e-6])  # one range for all panels
    for ax, s in zip(axes[0], subs, strict=False):
        g = grids[s]
        sns.heatmap(
            g,
            ax=ax,
            cmap="RdBu_r",
            center=0,
            vmin=-lim,
            vmax=lim,
            cbar=s == subs[-1],
            cbar_kws={"label": "normalised KL (mean over pairs)"},
        )
        ax.invert_yaxis()
        out[s] = {"top": top_heads(g), "n_pairs": int(ex[ex["subtask"] == s]["pair_id"].nunique())}
        per_head = ex[ex["subtask"] == s].groupby(["layer", "head"])["nkl"]
        stats = pd.DataFrame({"mean": per_head.mean(), "sd": per_head.std(), "n": per_head.size()})
        rows += [
            {
                "subtask": s,
                "rank": i + 1,
                "head": f"L{la}H{h}",
                "mean nKL": round(float(r["mean"]), 4),
                "sd": round(float(r["sd"]), 4) if r["n"] > 1 else None,
                "pairs": int(r["n"]),
            }
            for i, ((la, h), r) in enumerate(
                stats.sort_values("mean", ascending=False, kind="mergesort").head(10).iterrows()
            )
        ]
        ax.set_title(
            f"{s} (mean of n={out[s]['n_pairs']} fully swept pairs)\ntop: {', '.join(out[s]['top'])}", fontsize=9
        )
    fig.suptitle(f"{model}: exact per-head patching, all positions (one colour range)")
    fig.tight_layout()
    save(fig, outputs, dpi)
    return {**out, "top_heads_table": rows}


def patch_positions(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Per patched position and layer: the mean normalised KL over the layer's heads and the
    fully swept pairs (n in the title); the JSON lists each position's top heads by their
    mean over pairs, with n."""
    p = read_table(inputs["patching"]).to_pandas()
    pp = p[(p["method"] == "exact") & (p["positions"] != "all")].rename(columns={"positions": "where"})
    if pp.empty:
        return {**_no_sweep(outputs, model, dpi, "per-position heatmap"), "top_heads_per_position": []}
    g = pp.groupby(["where", "layer"])["nkl"].mean().unstack("layer")
    n_pairs = int(pp["pair_id"].nunique())
    fig, ax = plt.subplots(figsize=(9, 3.5))
    sns.heatmap(g, ax=ax, cmap="RdBu_r", center=0, cbar_kws={"label": "normalised KL, mean over heads and pairs"})
    ax.set_title(f"{model}: per-position patching, mean over the layer's heads and {n_pairs} pairs")
    save(fig, outputs, dpi)
    heads = pp.groupby(["where", "layer", "head"])["nkl"].agg(["mean", "count"]).reset_index()
    top = [
        {
            "positions": r.where,
            "head": f"L{r.layer}H{r.head}",
            "mean nKL": round(float(r.mean), 4),
            "pairs": int(r.count),
        }
        for _, g_ in heads.groupby("where")
        for r in g_.sort_values("mean", ascending=False).head(3).itertuples()
    ]
    return {"n_pairs": n_pairs, "top_heads_per_position": top}


def attribution(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    p = read_table(inputs["patching"]).to_pandas()
    p = p[p["positions"] == "all"]
    ex = p[p["method"] == "exact"].set_index(["pair_id", "layer", "head"])["nkl"]
    at = p[p["method"] == "attribution"].set_index(["pair_id", "layer", "head"])["nkl"]
    j = pd.concat({"exact": ex, "attribution": at}, axis=1).dropna()
    rho = spearman(j["attribution"].tolist(), j["exact"].tolist())
    per_pair = [spearman(g["attribution"].tolist(), g["exact"].tolist()) for _, g in j.groupby(level=0)]
    med = float(np.nanmedian(per_pair)) if per_pair else float("nan")
    # recall of the screen: on the fully swept pairs, the share of the exact top-K heads that
    # the screen's top-K also holds (K = the heads the screen confirms on the other pairs)
    exact = p[p["method"] == "exact"]
    swept_ids = sorted(set(exact.loc[exact["selection"] == "all_heads", "pair_id"]))
    screened = exact[exact["selection"] == "screen_top_k"]
    k_conf = int(screened.groupby("pair_id").size().median()) if len(screened) else 16
    recalls = []
    for pid in swept_ids:
        g = j.loc[pid]
        ex_top = set(g["exact"].nlargest(k_conf).index)
        sc_top = set(g["attribution"].abs().nlargest(k_conf).index)
        recalls.append(len(ex_top & sc_top) / max(1, len(ex_top)))
    recall = float(np.mean(recalls)) if recalls else float("nan")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter(j["attribution"], j["exact"], s=6, alpha=0.5)
    lim = [min(j.min().min(), 0), max(j.max().max(), 0.05)]
    ax.plot(lim, lim, color="grey", lw=0.8)
    ax.set_xlabel("attribution estimate (the screen)")
    ax.set_ylabel("exact normalised KL")
    ax.set_title(
        f"{model}: Spearman {rho:.2f} pooled, median per pair {med:.2f}\nrecall of the exact top-{k_conf} "
        f"by the screen's top-{k_conf}: {recall:.2f} ({len(recalls)} swept pairs); the circuit and heatmaps "
        f"use the swept pairs only",
        fontsize=8,
    )
    save(fig, outputs, dpi)
    return {
        "spearman_pooled": rho,
        "spearman_median_per_pair": med,
        f"recall_at_{k_conf}": recall,
        "swept_pairs": len(recalls),
    }


def sufficiency(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Agreement with the clean argmax when only k heads are kept, top-k vs random k-sets.

    Per k: the top-k curve with a 95% bootstrap interval over pairs, the random draws'
    mean and their 2.5-97.5% range; the verdict compares each pair's top-k agreement with
    its mean agreement over the random draws (paired bootstrap over pairs)."""
    t, level = sufficiency_table(read_table(inputs["sufficiency"]).to_pandas(), _pairs(inputs))
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(t["k"], t["top"], marker="o", color="C0", label="top-k heads by patching (95% CI over pairs)")
    ax.fill_between(t["k"], t["top_lo"], t["top_hi"], color="C0", alpha=0.2)
    if "random" in t:
        rr = t.dropna(subset=["random"])
        draws = int(rr["draws"].max()) if len(rr) else 0
        ax.plot(
            rr["k"],
            rr["random"],
            marker="s",
            ls="--",
            color="C1",
            label=f"k random heads ({draws} draws: mean, 95% range)",
        )
        ax.fill_between(rr["k"], rr["random_lo"], rr["random_hi"], color="C1", alpha=0.2)
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("heads kept (the others mean-ablated)")
    ax.set_ylabel("agreement with the clean argmax")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    h, per_k = sufficiency_headline(t, competence(inputs), level)
    ax.set_title(h.title(model), fontsize=8, wrap=True)
    drawn = save(fig, outputs, dpi)
    return {
        "headline": h.to_json(),
        "drawn_titles": drawn,
        "family_confidence": round(level, 4),
        "per_k": {
            int(r["k"]): {
                key: (round(v, 4) if isinstance(v, float) else v)
                for key, v in r.items()
                if key != "k" and not (isinstance(v, float) and np.isnan(v))
            }
            | per_k.get(int(r["k"]), {})
            for r in t.to_dict("records")
        },
    }


def rift(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Per layer, the share of heads whose logit-lens top token is a content word of the
    prompt ("context") among those reading a content word at all (function words,
    punctuation and numbers are left out: every prompt has them). The chance line is the
    share of the vocabulary's content tokens that are in the prompt."""
    h = read_table(inputs["heads"]).to_pandas()
    r = rift_readings(h)
    frac, counts, test, loc = r.frac, r.counts, r.test, r.loc
    hl = rift_headline(r, competence(inputs))
    s, chance, lo, hi = test["rift_layer"], r.chance, r.lo, r.hi
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(frac.index, frac.values, marker="o", label="share of content readings in the prompt (95% Wilson CI)")
    ax.fill_between(frac.index, lo, hi, alpha=0.2)
    ax.axhline(chance, color="grey", ls=":", label=f"chance: a random content token is in the prompt ({chance:.3f})")
    if test["step_detected"]:
        ax.axvline(s - 0.5, color="crimson", ls="--", label=f"step: block {s} of {len(frac)}")
    else:
        ax.axvline(s - 0.5, color="grey", ls="-.", label=f"best split, block {s} (not above shuffled layers)")
    ax.set_xlabel("layer")
    ax.set_ylabel("context / (context + prior)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(
        f"{hl.title(model)}\n(split gain {test['gain']:+.2f}; content readings per layer: "
        f"{int(counts.min())}-{int(counts.max())}; function words excluded)",
        fontsize=8,
    )
    drawn = save(fig, outputs, dpi)
    return {
        "headline": hl.to_json(),
        "drawn_titles": drawn,
        **test,
        "depth_ci95": [round(loc[0], 4), round(loc[1], 4)],
        "n_layers": len(frac),
        "content_readings_per_layer": [int(c) for c in counts],
        "chance": round(chance, 4),
        "function_share": round(r.function_share, 4),
        "context_fraction": [round(float(v), 3) for v in frac.fillna(float("nan"))],
    }


def answer_heads(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Answer-writing heads: DLA per head, and the paper's attention evidence (the top
    heads attend from the last position to the answer token in the prompt); the numbers
    from :func:`cotlens.circuits.analysis.answer_heads_test`."""
    t = answer_heads_test(inputs)
    g, flat, is_top, n = t["grid"], t["flat"], t["is_top"], t["numbers"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    lim = float(np.nanmax(np.abs(g.to_numpy()))) or 1.0
    sns.heatmap(
        g,
        ax=axes[0],
        cmap="RdBu_r",
        center=0,
        vmin=-lim,
        vmax=lim,
        cbar_kws={"label": "DLA: logit[answer] - logit[replacement]"},
    )
    axes[0].invert_yaxis()
    axes[0].set_title(
        f"answer-writing heads, top {', '.join(n['top'])}\n{t['late']:.0%} of positive DLA in the upper half "
        f"[{t['lo']:.0%}, {t['hi']:.0%}]: {n['late_verdict'][0]} (n={n['n_pairs']} pairs)",
        fontsize=8,
    )
    axes[1].scatter(flat["attn"], flat["dla"], s=8, alpha=0.5, label="heads")
    axes[1].scatter(flat["attn"][is_top], flat["dla"][is_top], s=30, color="crimson", label="top-5 DLA")
    axes[1].set(xlabel="attention from the last position to the answer token (mean over pairs)", ylabel="DLA")
    axes[1].legend(fontsize=7)
    axes[1].set_title(
        f"attention evidence: top-5 heads {t['top_att']:.2f} vs all {t['all_att']:.2f}; Spearman {t['rho']:.2f}, "
        f"p={t['p']:.3f}: {n['attention_verdict'][0]}",
        fontsize=8,
    )
    fig.suptitle(t["headline"].title(model), fontsize=8)
    fig.tight_layout()
    drawn = save(fig, outputs, dpi)
    return {"headline": t["headline"].to_json(), "drawn_titles": drawn, **n}


def probe(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Relation probe per layer: cross-validated accuracy (picks the layer), held-out test
    accuracy, and the control task's test accuracy (Hewitt & Liang); the headline is the
    test accuracy at the layer cross-validation picked, with its Wilson interval, and the
    selectivity there."""
    p = read_table(inputs["probe"]).to_pandas()
    r, h, majority = probe_result(p, competence(inputs))
    acc, best, n_test = p.set_index(["task", "split", "layer"])["accuracy"], r["selected_layer"], r["n_test"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    styles = {
        ("relation", "cv"): ("cross-validated (picks the layer)", "-", "C0"),
        ("relation", "test"): (f"held-out test (n={n_test})", "-", "C1"),
        ("control", "test"): ("control task, test (Hewitt & Liang)", "--", "grey"),
        ("relation", "train"): ("train", ":", "C0"),
    }
    for (task, split), (label, ls, c) in styles.items():
        s = acc.loc[(task, split)]
        ax.plot(s.index, s.to_numpy(), ls=ls, color=c, marker="o" if split == "test" else None, ms=3, label=label)
    ax.axhline(majority, color="grey", ls=":", lw=0.8, label="majority class (test)")
    ax.axvline(best, color="k", lw=0.6)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("layer")
    ax.set_ylabel("accuracy (related / negated / unrelated)")
    ax.legend(fontsize=7)
    ax.set_title(h.title(model), fontsize=8, wrap=True)
    drawn = save(fig, outputs, dpi)
    return {"headline": h.to_json(), "drawn_titles": drawn, **r}


def pathways(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Parallel pathways: every head patched (clean into corrupt) at the question positions
    alone, at the CoT positions alone, or at both (context). Only pairs whose corrupted
    word is in the question can show both pathways: when it is in the CoT, the question
    positions are identical in both runs and their patch is 0 by construction. Shown per
    subtask (where the word sits is tied to the subtask), mean with 95% bootstrap CI."""
    pairs = _pairs(inputs)
    w = read_table(inputs["pathways"]).to_pandas().merge(pairs[["pair_id", "subtask", "corrupted_in"]])
    gate = competence(inputs)
    t = pathways_table(w, pairs, gate)
    q, order, subs, level, out = t.used, t.order, t.subtasks, t.level, t.numbers
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(order))
    for i, pos in enumerate(order):
        cells = [t.cells[s, pos] for s in subs]
        means = [m for m, _, _ in cells]
        errs = [
            [m - lo if np.isfinite(lo) else 0.0 for m, lo, _ in cells],
            [hi - m if np.isfinite(hi) else 0.0 for m, _, hi in cells],
        ]
        ax.bar(np.arange(len(subs)) + i * width, means, width, yerr=errs, capsize=3, label=f"patched at {pos}")
    ax.set_xticks(
        np.arange(len(subs)) + width * (len(order) - 1) / 2,
        [f"{s}\n(n={q[q['subtask'] == s]['pair_id'].nunique()})" for s in subs],
    )
    ax.set_ylabel(f"normalised KL recovered ({level:.1%} CI over prompts)")
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7)
    h = pathways_headline(out, subs, gate, level)
    ax.set_title(h.title(model), fontsize=8, wrap=True)
    drawn = save(fig, outputs, dpi)
    return {"headline": h.to_json(), "drawn_titles": drawn, **out}


# --- the reasoning spine: accuracy, step accuracy, logit lens ---

ONTOLOGY_ORDER = ["fictional", "true", "false"]


def accuracy(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Answer accuracy by hops, one line per ontology, one panel per distractor setting."""
    df = load_scored(inputs["prompts"], inputs["samples"])
    df["accuracy"] = df["answer_correct"].astype(float)
    g = sns.catplot(
        data=df,
        x="hops",
        y="accuracy",
        hue="ontology",
        col="distractors",
        kind="point",
        hue_order=[o for o in ONTOLOGY_ORDER if o in set(df["ontology"])],
        errorbar=("ci", 95),
        height=3.2,
        aspect=1.1,
        dodge=0.2,
        seed=0,
    )
    for ax in g.axes.flat:
        ax.axhline(0.5, ls=":", c="grey", lw=1)
        ax.set_ylim(-0.05, 1.05)
    g.figure.suptitle(f"{model}: answer accuracy (chance 0.5)", y=1.03)
    save(g.figure, outputs, dpi)
    cells = df.groupby(["ontology", "hops"])["accuracy"].agg(["mean", "size"]).reset_index()
    return {"accuracy": cells.rename(columns={"mean": "accuracy", "size": "n"}).to_dict("records")}


def step_accuracy(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Fraction of samples whose CoT step i equals gold step i, by step and hops."""
    df = load_scored(inputs["prompts"], inputs["samples"])
    recs = []
    for r in df.itertuples():
        got = list(r.step_correct)
        for i in range(len(r.gold_cot)):
            recs.append({"hops": r.hops, "step": i, "ontology": r.ontology, "correct": float(i < len(got) and got[i])})
    st = pd.DataFrame(recs)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.lineplot(data=st, x="step", y="correct", hue="hops", marker="o", ax=ax, errorbar=None, palette="viridis")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("CoT step (gold index)")
    ax.set_ylabel("step matches gold")
    ax.set_title(f"{model}: step accuracy")
    save(fig, outputs, dpi)
    cells = st.groupby(["hops", "step"])["correct"].agg(["mean", "size"]).reset_index()
    return {"step_accuracy": cells.rename(columns={"mean": "correct", "size": "n"}).to_dict("records")}


def lens_heatmap(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """Mean lens probability of the in-context token and of the no-context prior token,
    layer x position, over positions where the two predictions differ (positions seen
    fewer than 3 times are dropped)."""
    lens = inputs["lens"]
    df = lens_table(lens)
    df = df[df["context_token"] != df["prior_token"]]
    if df.empty:
        df = lens_table(lens)
    counts = df.groupby("where")["layer"].count() / max(1, df["layer"].nunique())
    ladder = ["last_prompt", *[f"step {i}" for i in range(64)], "answer"]
    order = [w for w in ladder if counts.get(w, 0) >= 3] or [w for w in ladder if w in counts]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, col, title in (
        (axes[0], "p_context", "p(in-context token)"),
        (axes[1], "p_prior", "p(no-context prior token)"),
    ):
        piv = df.pivot_table(index="layer", columns="where", values=col, aggfunc="mean")[order]
        norm = PowerNorm(gamma=0.4, vmin=0, vmax=1)  # shows the small early-layer probabilities
        sns.heatmap(piv.iloc[::-1], ax=ax, norm=norm, cmap="magma", cbar=ax is axes[1])
        ax.set_title(title)
        ax.set_xlabel("position")
    fig.suptitle(f"{model}: logit lens", y=1.02)
    save(fig, outputs, dpi)
    return {"by_layer": df.groupby("layer")[["p_context", "p_prior"]].mean().reset_index().to_dict("records")}


FIGURES = {
    "accuracy": accuracy,
    "step_accuracy": step_accuracy,
    "lens_heatmap": lens_heatmap,
    "patch_heads": patch_heads,
    "patch_positions": patch_positions,
    "attribution": attribution,
    "sufficiency": sufficiency,
    "rift": rift,
    "answer_heads": answer_heads,
    "probe": probe,
    "pathways": pathways,
}
