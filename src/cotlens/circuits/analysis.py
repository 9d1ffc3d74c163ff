"""Study 1's analysis: the numbers and verdicts its figures report, computed from its
tables (no drawing: ``cotlens.circuits.figures`` draws them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cotlens.circuits.findings import CLAIMS
from cotlens.core.stats import bootstrap_mean, spearman, wilson
from cotlens.core.types import SUBTASKS
from cotlens.core.verdicts import (
    ABSENT,
    ALPHA,
    INCONCLUSIVE,
    REPRODUCED,
    Gate,
    Headline,
    bca,
    empirical_p,
    family_level,
    headline,
    holm,
    judge,
    mean_ci,
    proportion_ci,
    strongest_first,
    t_p,
    weakest,
)
from cotlens.io.parquet import read_table

MID = (1 / 3, 2 / 3)  # "mid-depth": the paper's rift sits at block ~16 of 32


def competence(inputs: Mapping[str, str]) -> Gate:
    """The model answers the PrOntoQA questions above chance (0.5): the exact 95% interval
    of its answer accuracy (every sample; an unparsed answer is wrong) lies above 0.5."""
    df = load_scored(inputs["prompts"], inputs["samples"])
    k, n = int(df["answer_correct"].fillna(False).astype(bool).sum()), len(df)
    if n == 0:
        return Gate("answer accuracy", None, "no samples")
    lo, hi = proportion_ci(k, n)
    return Gate("answer accuracy", lo > 0.5, f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}] (chance 0.5)")


def by_prompt(values: pd.Series, pairs: pd.DataFrame) -> pd.Series:
    """Per-pair values averaged per prompt: pairs of one prompt are not independent, the
    prompts are the unit of replication."""
    pid = pairs.set_index("pair_id")["prompt_id"]
    return values.groupby(pid.reindex(values.index).to_numpy()).mean()


def swept(patch: pd.DataFrame) -> pd.DataFrame:
    """Exact all-position rows of the pairs whose every head was patched (a full sweep;
    the screened pairs' top-K rows would bias a per-head mean)."""
    return patch[(patch["method"] == "exact") & (patch["positions"] == "all") & (patch["selection"] == "all_heads")]


def sufficiency_headline(t: pd.DataFrame, gate: Gate, level: float) -> tuple[Headline, dict[int, dict[str, Any]]]:
    """The family over the tested k: each k judged on its Bonferroni interval (simultaneous
    95%) and Holm p; the headline is the k with the highest lower bound."""
    claim = CLAIMS["sufficiency"]
    tested = t.dropna(subset=["top_minus_random"]) if "top_minus_random" in t else t.iloc[0:0]
    if tested.empty:
        return headline(claim, "no k with random draws", float("nan"), None, "0 prompts", gates=[gate]), {}
    adj = holm(tested["p"].tolist())
    per_k: dict[int, dict[str, Any]] = {}
    for (_, r), pa in zip(tested.iterrows(), adj, strict=True):
        v, why = judge(claim, r["top_minus_random"], tuple(r["ci_family"]), p=pa, gates=[gate])
        per_k[int(r["k"])] = {"p_holm": round(pa, 4), "verdict": v, "reason": why}
    # the family's verdict is its strongest member's (ties: the highest lower bound): any k
    # that shows the claim shows it, and "absent" needs every k absent
    ranked = tested.assign(
        lo=[c[0] for c in tested["ci_family"]], v=[per_k[int(k)]["verdict"] for k in tested["k"]]
    ).sort_values("lo", ascending=False, kind="mergesort")
    best = ranked.iloc[strongest_first(ranked["v"].tolist())[0]]
    k = int(best["k"])
    gaps = ", ".join(f"k={int(r.k)} {r.top_minus_random:+.2f}" for r in tested.itertuples())
    return headline(
        claim,
        f"best k = {k}: top-k agreement {best['top']:.2f} vs random {best['random']:.2f} ({gaps}; "
        f"{level:.1%} intervals over {len(tested)} k)",
        float(best["top_minus_random"]),
        (float(best["ci_family"][0]), float(best["ci_family"][1])),
        f"{int(best['n_prompts'])} prompts ({int(best['n_pairs'])} pairs)",
        p=float(per_k[k]["p_holm"]),
        gates=[gate],
    ), per_k


def rift_split(frac: Sequence[float] | np.ndarray) -> tuple[int, float]:
    """(s, gain): the split maximising mean(frac[s:]) - mean(frac[:s]) and that gain."""
    f = np.asarray(frac, dtype=float)
    best, where = -np.inf, len(f) // 2
    for s in range(1, len(f)):
        gain = f[s:].mean() - f[:s].mean()
        if gain > best:
            best, where = gain, s
    return int(where), float(best)


def rift_test(frac: Sequence[float], n_perm: int = 999, seed: int = 0) -> dict[str, Any]:
    """The rift and its null: the same detector on the layers in random order. A step in
    depth gives a gain that shuffled layers rarely reach; a noise spike does not."""
    s, gain = rift_split(frac)
    rng = np.random.default_rng(seed)
    f = np.asarray(frac, dtype=float)
    null = [rift_split(rng.permutation(f))[1] for _ in range(n_perm)]
    p = empirical_p(gain, null)
    return {
        "rift_layer": s,
        "relative_depth": round(s / len(f), 3),
        "gain": round(gain, 4),
        "p_vs_shuffled_layers": round(p, 4),
        "n_perm": n_perm,
        "null_gain_95": round(float(np.quantile(null, 0.95)), 4),
        "step_detected": p <= ALPHA,
    }


def rift_location(ctx: np.ndarray, content: np.ndarray, n_boot: int = 999, seed: int = 0) -> tuple[float, float]:
    """Percentile 95% interval of the step's relative depth, resampling pairs with
    replacement; ``ctx`` / ``content`` are [pairs, layers] counts of in-context / content
    readings."""
    rng = np.random.default_rng(seed)
    n, n_layers = ctx.shape
    depths = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        c, t = w @ ctx, w @ content
        depths.append(rift_split(np.where(t > 0, c / np.maximum(t, 1), 0.0))[0] / n_layers)
    return float(np.quantile(depths, 0.025)), float(np.quantile(depths, 0.975))


def rift_verdict(test: dict[str, Any], ci: tuple[float, float]) -> tuple[str, str]:
    """A step (permutation p <= ALPHA) whose depth interval lies inside mid-depth is the
    paper's rift; a step whose interval lies outside it means no mid-depth rift."""
    if not test["step_detected"]:
        return INCONCLUSIVE, f"no step above shuffled layers (p = {test['p_vs_shuffled_layers']:.3f})"
    if MID[0] <= ci[0] and ci[1] <= MID[1]:
        return REPRODUCED, "a step, its depth interval inside mid-depth [1/3, 2/3]"
    if ci[0] > MID[1] or ci[1] < MID[0]:
        return ABSENT, "a step, but its depth interval lies outside mid-depth [1/3, 2/3]"
    return INCONCLUSIVE, "a step, its depth interval straddles the edge of mid-depth"


def pathways_headline(out: dict[str, Any], subs: Sequence[str], gate: Gate, level: float) -> Headline:
    """Both pathways in one subtask: per subtask the weaker of the question and CoT patches
    (an intersection: each must hold), judged on the family's Bonferroni intervals; the
    headline is the subtask where the weaker pathway is strongest."""
    claim = CLAIMS["pathways"]
    cells = [(s, out[f"{s} question"], out[f"{s} cot"]) for s in subs if f"{s} question" in out and f"{s} cot" in out]
    if not cells:
        return headline(claim, "no subtask with both patches", float("nan"), None, "0 pairs", gates=[gate])

    def both(c: tuple[str, dict[str, Any], dict[str, Any]]) -> str:
        return weakest(
            [judge(claim, x["mean"], (x["ci_family"][0], x["ci_family"][1]), gates=[gate])[0] for x in c[1:]]
        )

    cells.sort(key=lambda c: -min(c[1]["ci_family"][0], c[2]["ci_family"][0]))  # ties: the higher lower bound
    s, qv, cv = cells[strongest_first([both(c) for c in cells])[0]]
    weak = qv if qv["ci_family"][0] <= cv["ci_family"][0] else cv
    v = both((s, qv, cv))
    _, why = judge(claim, weak["mean"], (weak["ci_family"][0], weak["ci_family"][1]), gates=[gate])
    return headline(
        claim,
        f"{s}: question pathway {qv['mean']:.2f}, CoT pathway {cv['mean']:.2f} nKL recovered "
        f"(the weaker's {level:.1%} interval; {len(subs)} subtask(s))",
        weak["mean"],
        (weak["ci_family"][0], weak["ci_family"][1]),
        f"{min(qv['n_prompts'], cv['n_prompts'])} prompts",
        gates=[gate],
        verdict=(v, why),
    )


def load_scored(prompts: str | Path, samples: str | Path) -> pd.DataFrame:
    p = read_table(
        prompts, columns=["prompt_id", "ontology", "hops", "distractors", "negation", "gold_cot"]
    ).to_pandas()
    s = read_table(
        samples, columns=["prompt_id", "sample_idx", "answer", "answer_correct", "step_correct", "cot_exact"]
    ).to_pandas()
    return s.merge(p, on="prompt_id", validate="many_to_one")


def lens_table(lens: str | Path) -> pd.DataFrame:
    df = read_table(
        lens, columns=["pos_kind", "step", "layer", "p_context", "p_prior", "context_token", "prior_token"]
    ).to_pandas()
    df["where"] = np.where(df["pos_kind"] == "step_end", "step " + df["step"].astype(str), df["pos_kind"])
    return df


def answer_heads_test(inputs: Mapping[str, str]) -> dict[str, Any]:
    """The answer-writing heads' numbers: the [layer, head] DLA grid and its top 5, the
    share of positive DLA in the upper half of the layers with its 95% BCa interval over
    pairs, and the Spearman correlation of DLA with attention to the answer token (permutation
    p, Fieller interval); each judged against the claim, and the figure's headline."""
    h = read_table(inputs["heads"]).to_pandas()
    g = head_grid(h, "dla")
    top = top_heads(g, 5)
    att = head_grid(h, "attn_answer")
    n_layers = len(g)
    # per pair x head DLA: a bootstrap resample of pairs (with replacement, duplicates kept)
    # is a weighted mean of its rows
    per = h.pivot_table(index="pair_id", columns=["layer", "head"], values="dla", aggfunc="mean")
    dla = per.fillna(0.0).to_numpy(float)
    upper = per.columns.get_level_values(0).to_numpy() >= n_layers // 2
    pids = per.index.to_numpy()

    def late_share(idx: np.ndarray) -> float:
        m = np.clip(dla[idx].mean(0), 0, None)
        tot = float(m.sum())
        return float(m[upper].sum() / tot) if tot > 0 else float("nan")

    late = late_share(np.arange(len(pids)))
    lo, hi = bca(late_share, len(pids))
    gate = competence(inputs)
    claim = CLAIMS["answer_heads"]
    late_v = judge(claim, late - 0.5, (lo - 0.5, hi - 0.5), gates=[gate])
    rng = np.random.default_rng(0)
    flat = pd.DataFrame({"dla": g.stack(), "attn": att.stack()})
    topk = [tuple(int(x) for x in t[1:].split("H")) for t in top]
    is_top = [i in topk for i in flat.index]
    rho = spearman(flat["attn"].tolist(), flat["dla"].tolist())
    perm = [spearman(rng.permutation(flat["attn"].to_numpy()).tolist(), flat["dla"].tolist()) for _ in range(199)]
    p = empirical_p(rho, perm) if np.isfinite(rho) else float("nan")
    top_att, all_att = float(flat["attn"][is_top].mean()), float(flat["attn"].mean())
    n_heads = len(flat)
    se = 1.06 / np.sqrt(n_heads - 3) if n_heads > 3 else float("nan")  # Fieller et al. for Spearman
    z_rho = float(np.arctanh(np.clip(rho, -0.999, 0.999)))
    rho_ci = (float(np.tanh(z_rho - 1.96 * se)), float(np.tanh(z_rho + 1.96 * se)))
    att_v = judge(replace(claim, sesoi=0.3), rho, rho_ci, p=p, gates=[gate])  # a medium correlation (Cohen)
    both = weakest([late_v[0], att_v[0]])
    why = late_v[1] if both == late_v[0] else att_v[1]
    hl = headline(
        claim,
        f"{late:.0%} of positive DLA in the upper half; DLA vs attention to the answer Spearman {rho:+.2f} "
        f"(p = {p:.3f}, top-5 heads {top_att:.2f} vs all {all_att:.2f})",
        late - 0.5,
        (lo - 0.5, hi - 0.5),
        f"{len(pids)} pairs",
        gates=[gate],
        verdict=(both, f"upper half: {late_v[0]}; attention: {att_v[0]} ({why})"),
    )
    numbers = {
        "top": top,
        "upper_half_share": round(late, 4),
        "upper_half_ci95": [round(lo, 4), round(hi, 4)],
        "late_verdict": list(late_v),
        "attn_top5": round(top_att, 4),
        "attn_all": round(all_att, 4),
        "spearman_dla_attn": round(rho, 4),
        "spearman_ci95": [round(rho_ci[0], 4), round(rho_ci[1], 4)],
        "p_perm": round(p, 4),
        "attention_verdict": list(att_v),
        "n_pairs": len(pids),
    }
    return {
        "grid": g,
        "flat": flat,
        "is_top": is_top,
        "late": late,
        "lo": lo,
        "hi": hi,
        "rho": rho,
        "p": p,
        "top_att": top_att,
        "all_att": all_att,
        "headline": hl,
        "numbers": numbers,
    }


def head_grid(df: pd.DataFrame, value: str) -> pd.DataFrame:
    return df.groupby(["layer", "head"])[value].mean().unstack("head").sort_index()


def top_heads(grid: pd.DataFrame, n: int = 3) -> list[str]:
    s = grid.stack().sort_values(ascending=False, kind="mergesort")
    return [f"L{la}H{h}" for la, h in s.index[:n]]


def sufficiency_table(c: pd.DataFrame, pairs: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Per k (the sufficiency table's rows): the top-k agreement with its 95% bootstrap
    interval over pairs, the random draws' mean and 2.5-97.5% range, and for every k with
    random draws (the family) each pair's top-k agreement minus its mean over the draws,
    averaged per prompt, with the family's interval and t-test p. Returns the table (sorted
    by k) and the family's confidence level."""
    top = c[~c["random"]]
    rnd = c[c["random"]]
    tested_k = sorted(int(k) for k in set(rnd["k"]) if k > 0)  # the family: every k with random draws
    level = family_level(len(tested_k))
    rows = []
    for k, g in top.groupby("k"):
        mean, lo, hi = bootstrap_mean(g["agree"].astype(float).to_numpy())
        r = rnd[rnd["k"] == k]
        per_draw = r.groupby("draw")["agree"].mean().to_numpy() if len(r) else np.zeros(0)
        row: dict[str, Any] = {
            "k": int(k),
            "top": mean,
            "top_lo": lo,
            "top_hi": hi,
            "n_pairs": len(g),
            "draws": len(per_draw),
        }
        if len(per_draw) and int(k) in tested_k:
            per_pair = r.groupby("pair_id")["agree"].mean()
            t = g.set_index("pair_id")["agree"].astype(float)
            d = by_prompt(t - per_pair.reindex(t.index), pairs)
            est, dlo, dhi = mean_ci(d.to_numpy(), level)
            row |= {
                "random": float(per_draw.mean()),
                "random_lo": float(np.quantile(per_draw, 0.025)),
                "random_hi": float(np.quantile(per_draw, 0.975)),
                "top_minus_random": est,
                "ci_family": [dlo, dhi],
                "n_prompts": len(d),
                "p": t_p(d.to_numpy()),
            }
        rows.append(row)
    return pd.DataFrame(rows).sort_values("k"), level


@dataclass(frozen=True)
class RiftReadings:
    """Per layer, the share of content readings (the heads' logit-lens top tokens that are
    content words) that are in the prompt, with what the rift figure reports of it."""

    frac: pd.Series  # per layer: context / (context + prior); NaN where no content reading
    counts: pd.Series  # per layer: content readings
    lo: list[float]  # per layer: the share's 95% Wilson interval
    hi: list[float]
    test: dict[str, Any]  # rift_test of the shares: the step, its depth, p vs shuffled layers
    loc: tuple[float, float]  # the step's relative depth, bootstrap interval over pairs
    n_pairs: int
    chance: float  # share of the vocabulary's content tokens that are in the prompt
    function_share: float  # readings left out as function words


def rift_readings(h: pd.DataFrame) -> RiftReadings:
    """The rift's numbers from the heads table (function words, punctuation and numbers
    left out: every prompt has them)."""
    content = h[h["top_kind"] != "function"]
    layers = sorted(h["layer"].unique())
    frac = content.groupby("layer")["top_kind"].apply(lambda k: float((k == "context").mean())).reindex(layers)
    counts = content.groupby("layer").size().reindex(layers, fill_value=0)
    by = content.assign(ctx=content["top_kind"] == "context").groupby(["pair_id", "layer"])
    ctx = by["ctx"].sum().unstack("layer").reindex(columns=layers, fill_value=0).fillna(0).to_numpy(float)
    tot = by.size().unstack("layer").reindex(columns=layers, fill_value=0).fillna(0).to_numpy(float)
    bounds = [wilson(float(f * n), int(n)) if n else (0.0, 0.0) for f, n in zip(frac.fillna(0), counts, strict=True)]
    return RiftReadings(
        frac=frac,
        counts=counts,
        lo=[b[0] for b in bounds],
        hi=[b[1] for b in bounds],
        test=rift_test(frac.fillna(0.0).tolist()),
        loc=rift_location(ctx, tot),
        n_pairs=int(ctx.shape[0]),
        chance=float(h["context_chance"].mean()),
        function_share=float((h["top_kind"] == "function").mean()),
    )


def rift_headline(r: RiftReadings, gate: Gate) -> Headline:
    test = r.test
    return headline(
        CLAIMS["rift"],
        f"step at block {test['rift_layer']} of {len(r.frac)} ({test['relative_depth']:.0%} depth), "
        f"p = {test['p_vs_shuffled_layers']:.3f} vs shuffled layers",
        test["relative_depth"],
        r.loc,
        f"{len(r.frac)} layers, {r.n_pairs} pairs",
        gates=[gate],
        verdict=None if gate.passed is False else rift_verdict(test, r.loc),
    )


def probe_result(p: pd.DataFrame, gate: Gate) -> tuple[dict[str, Any], Headline, float]:
    """The probe table's numbers at the layer grouped cross-validation picked: held-out
    accuracy with its Wilson interval, the control task's, the majority class's (also
    returned unrounded, for the figure's line), and the headline (held-out accuracy above
    max(control, majority))."""
    acc = p.set_index(["task", "split", "layer"])["accuracy"]
    best = int(p.loc[p["selected"], "layer"].iloc[0])
    n_test = int(p.loc[(p["split"] == "test"), "n"].iloc[0])
    maj = float(p.loc[(p["task"] == "relation") & (p["split"] == "test"), "majority"].iloc[0])
    test_at = float(acc.loc[("relation", "test", best)])
    control_at = float(acc.loc[("control", "test", best)])
    lo, hi = proportion_ci(round(test_at * n_test), n_test)
    floor = max(maj, control_at)
    h = headline(
        CLAIMS["probe"],
        f"layer {best} (picked by cross-validation): held-out {test_at:.2f} [{lo:.2f}, {hi:.2f}], control "
        f"{control_at:.2f}, majority {maj:.2f}; above max(control, majority) by {test_at - floor:+.2f}",
        test_at - floor,
        (lo - floor, hi - floor),
        f"{n_test} held-out pairs",
        gates=[gate],
    )
    out = {
        "selected_layer": best,
        "selected_by": "grouped cross-validation on the selection prompts",
        "cv_accuracy": round(float(acc.loc[("relation", "cv", best)]), 4),
        "test_accuracy": round(test_at, 4),
        "test_ci95": [round(lo, 4), round(hi, 4)],
        "n_test": n_test,
        "control_test_accuracy": round(control_at, 4),
        "selectivity": round(test_at - control_at, 4),
        "majority_test": round(maj, 4),
        # the optimistic number reported before the validation split: max over layers of test
        "max_test_accuracy_any_layer": round(float(acc.loc[("relation", "test")].max()), 4),
    }
    return out, h, maj


@dataclass(frozen=True)
class PathwaysTable:
    used: pd.DataFrame  # the pairs whose corrupted word is in the question (both pathways can show)
    order: list[str]  # patched positions: question, cot, context (those present)
    subtasks: list[str]
    level: float  # the family's confidence (one member per subtask)
    numbers: dict[str, Any]  # "<subtask> <positions>": mean, family interval, n_prompts, verdict
    cells: dict[tuple[str, str], tuple[float, float, float]]  # (subtask, positions): mean, lo, hi, unrounded


def pathways_table(
    w: pd.DataFrame, pairs: pd.DataFrame, gate: Gate, subtasks: Sequence[str] = SUBTASKS
) -> PathwaysTable:
    """Per subtask and patched positions, the nKL recovered, averaged per prompt, with the
    family's interval (Bonferroni over subtasks); only pairs whose corrupted word is in the
    question (when it is in the CoT, the question positions are identical in both runs and
    their patch is 0 by construction)."""
    q = w[w["corrupted_in"] == "question"]
    order = [c for c in ("question", "cot", "context") if c in set(w["positions"])]
    subs = [s for s in subtasks if (q["subtask"] == s).any()]
    level = family_level(len(subs))
    claim = CLAIMS["pathways"]
    out: dict[str, Any] = {
        "pairs_used": int(q["pair_id"].nunique()),
        "pairs_excluded_cot_corrupted": int(w[w["corrupted_in"] == "cot"]["pair_id"].nunique()),
        "family_confidence": round(level, 4),
    }
    cells: dict[tuple[str, str], tuple[float, float, float]] = {}
    for pos in order:
        for s in subs:
            v = by_prompt(q[(q["subtask"] == s) & (q["positions"] == pos)].set_index("pair_id")["nkl"], pairs)
            m, lo, hi = cells[s, pos] = mean_ci(v.to_numpy(), level)
            out[f"{s} {pos}"] = {"mean": round(m, 4), "ci_family": [round(lo, 4), round(hi, 4)], "n_prompts": len(v)}
            if pos != "context":
                out[f"{s} {pos}"]["verdict"] = judge(claim, m, (lo, hi), gates=[gate])[0]
    return PathwaysTable(q, order, subs, level, out, cells)
