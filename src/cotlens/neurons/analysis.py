"""Study 2's analysis: the numbers and verdicts its figures report, computed from its
tables (no drawing: ``cotlens.neurons.figures`` draws them)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from cotlens.core.stats import wilson
from cotlens.core.verdicts import (
    INCONCLUSIVE,
    REPRODUCED,
    REVERSED,
    Gate,
    Headline,
    headline,
    judge,
    paired_ci,
    proportion_ci,
)
from cotlens.neurons.findings import CLAIMS

MIN_SOLVED = 5  # a drop is measurable: losing all of 5 solved problems is p = 0.5**5 = 0.031 (exact sign test)
MIN_RANDOM_SETS = 20  # random neuron sets per ablated set
PRIMARY_MODE = "noise"  # the paper's ablation (Rai & Yao add noise to the value vectors)
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


def variant_summary(runs: pd.DataFrame) -> pd.DataFrame:
    v = runs[runs["condition"] == "variant"]
    return v.groupby("variant", sort=False).agg(
        acc=("correct", "mean"), act=("concept_active", "mean"), mean_act=("concept_act", "mean"), n=("correct", "size")
    )


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
