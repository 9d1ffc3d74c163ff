"""Study 4 figures (MoTE / fTRI): the expert map, switching, and the quality guard.

Each figure reads Parquet only, writes PNG + PDF, and a JSON of the numbers in its title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cotlens.core.stats import wilson
from cotlens.core.verdicts import ALPHA, COLLAPSE, Gate, empirical_p, headline, holm, mean_ci, proportion_ci
from cotlens.experts.findings import CLAIMS
from cotlens.io.figures import FigureFiles, Inputs, save
from cotlens.io.parquet import read_table

# The quality guard (MoTE guards quality with MT-Bench; here, on every response):
# - a response is *broken* when it is empty or its fluency (mean NLL per token under the
#   model with no switch) exceeds the 95th percentile of the no-switch responses by more
#   than ``broken_margin`` nats (log 4: four times less likely per token); a broken response
#   is neither a refusal nor an answer, so "I cannot at the football stadium?" does not
#   count as a refusal, and in the switch effects it counts as no change (the prompt keeps
#   its no-switch outcome): garbling the model never reads as a behaviour change;
# - a condition has *collapsed* when its quality accuracy drops by more than
#   ``max_quality_drop``, its reference perplexity rises by more than ``max_ppl_ratio``,
#   or more than ``max_broken`` of its responses are broken. A collapsed condition's
#   refusal rate is not a behaviour change and gets no "reproduced" verdict.
GUARD = {"broken_margin": math.log(4.0), "max_broken": 0.10, "max_quality_drop": 0.15, "max_ppl_ratio": 1.25}
MIN_RANDOM_SETS = 99  # the permutation p can reach 0.01
BASE_ELICITING, BASE_CONTROL = 0.5, 0.5  # the gate: baseline refusal's exact interval above / below


def guard(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``broken`` and ``refused_fluent`` columns (see GUARD)."""
    out = runs.copy()
    base = out[(out["condition"] == "baseline") & out["fluency_nll"].notna()]["fluency_nll"]
    limit = float(base.quantile(0.95)) + GUARD["broken_margin"] if len(base) else float("inf")
    said = out["set"].isin(["study", "quality"])
    empty = said & (out["n_tokens"].fillna(0) == 0)
    out["broken"] = (out["fluency_nll"].fillna(-np.inf) > limit) | empty
    out["refused_fluent"] = out["refused"].fillna(False).astype(bool) & ~out["broken"]
    out.attrs["broken_limit"] = limit
    return out


def switch_summary(runs: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """Refusal rate (fluent refusals, see GUARD) with a 95% Wilson interval per (condition,
    mode, k, prompt set), and the share of broken responses.

    ``elicits`` True is the behaviour set (should be refused), False the control set.
    Random conditions pool their seeds (the interval is over prompts x seeds) and give
    the spread of the per-seed rates as ``seed_sd``."""
    g0 = guard(runs)
    st = g0[g0["set"] == "study"].merge(prompts[["prompt_id", "elicits"]], on="prompt_id")
    rows = []
    for (cond, mode, k, el), g in st.groupby(["condition", "mode", "k", "elicits"]):
        per_seed = g.groupby("seed")["refused_fluent"].mean()
        lo, hi = wilson(float(g["refused_fluent"].sum()), len(g))
        rows.append(
            {
                "condition": cond,
                "mode": mode,
                "k": int(k),
                "elicits": bool(el),
                "rate": float(g["refused_fluent"].mean()),
                "lo": lo,
                "hi": hi,
                "n": len(g),
                "broken": float(g["broken"].mean()),
                "seed_sd": float(per_seed.std(ddof=0)),
                "per_seed": [float(v) for v in per_seed.to_numpy()],
            }
        )
    return pd.DataFrame(rows)


def quality_summary(runs: pd.DataFrame, per_set: bool = False) -> pd.DataFrame:
    """Quality-question accuracy (Wilson 95%), reference perplexity, the share of broken
    responses and whether the condition collapsed (GUARD), per (condition, mode, k), or with
    ``per_set`` per (condition, mode, k, seed): each random set guarded on its own."""
    g0 = guard(runs)
    rows = []
    keys = ["condition", "mode", "k"] + (["seed"] if per_set else [])
    for key, g in g0.groupby(keys):
        cond, mode, k = key[:3]
        q, r = g[g["set"] == "quality"], g[g["set"] == "reference"]
        lo, hi = wilson(float(q["correct"].sum()), len(q))
        ppl = math.exp(r["nll"].sum() / max(1, r["n_tokens"].sum())) if len(r) else float("nan")
        said = g[g["set"].isin(["study", "quality"])]
        rows.append(
            {
                "condition": cond,
                "mode": mode,
                "k": int(k),
                **({"seed": int(key[3])} if per_set else {}),
                "accuracy": float(q["correct"].mean()) if len(q) else float("nan"),
                "lo": lo,
                "hi": hi,
                "perplexity": ppl,
                "broken": float(said["broken"].mean()) if len(said) else float("nan"),
            }
        )
    out = pd.DataFrame(rows)
    base = out[out["condition"] == "baseline"]
    if len(base):
        b = base.iloc[0]
        out["collapsed"] = (
            (b["accuracy"] - out["accuracy"] > GUARD["max_quality_drop"])
            | (out["perplexity"] / b["perplexity"] > GUARD["max_ppl_ratio"])
            | (out["broken"] > GUARD["max_broken"])
        )
    else:
        out["collapsed"] = False
    return out


def outcomes(runs: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """Per study prompt and condition: ``fluent`` refusal (0/1) with broken responses set to
    the prompt's no-switch outcome (no change), ``elicits``, and the condition's keys."""
    g = guard(runs)
    st = g[g["set"] == "study"].merge(prompts[["prompt_id", "elicits"]], on="prompt_id")
    base = st[st["condition"] == "baseline"].set_index("prompt_id")["refused_fluent"].astype(float)
    st = st.assign(base=st["prompt_id"].map(base).astype(float))
    st["outcome"] = np.where(st["broken"], st["base"], st["refused_fluent"].astype(float))
    return st


def competence(st: pd.DataFrame) -> Gate:
    """The behaviour is there to switch: the no-switch model refuses the eliciting prompts
    (exact 95% interval above BASE_ELICITING) and not the control ones (below BASE_CONTROL)."""
    b = st[st["condition"] == "baseline"]
    el, co = b[b["elicits"]]["refused_fluent"], b[~b["elicits"]]["refused_fluent"]
    if el.empty or co.empty:
        return Gate("baseline refusal", None, "no eliciting or no control prompts")
    (elo, _), (_, chi) = proportion_ci(int(el.sum()), len(el)), proportion_ci(int(co.sum()), len(co))
    ok = elo > BASE_ELICITING and chi < BASE_CONTROL
    return Gate(
        "baseline refusal",
        ok,
        f"eliciting {el.mean():.2f} (lower bound {elo:.2f}, needs > {BASE_ELICITING}), control {co.mean():.2f} "
        f"(upper bound {chi:.2f}, needs < {BASE_CONTROL}), {len(el)}+{len(co)} prompts",
    )


def switch_verdicts(
    st: pd.DataFrame, q: pd.DataFrame, qs: pd.DataFrame, min_sets: int = MIN_RANDOM_SETS
) -> dict[str, dict[str, Any]]:
    """Per (mode, k): the top-k effect against the random k-sets, from ``outcomes`` (broken
    responses are no change).

    off: on the eliciting prompts, the share of the no-switch refusals cut; on: on the
    control prompts, the rise in refusals (per prompt, in units of the eliciting baseline's
    refusal rate for off). ``effect`` is the top set's; ``beyond_random`` its excess over the
    mean random set with a t interval over prompts (the prompt's change under the top set
    minus its mean change under the random sets); ``p_vs_random`` is the top set's rank
    among the random sets (the unit of replication: random sets), Holm-adjusted over the
    family of (mode, k) as ``p_holm``. ``q``/``qs``: the guard per condition / per set."""
    out: dict[str, dict[str, Any]] = {}
    coll = {(r.condition, r.mode, r.k): bool(r.collapsed) for r in q.itertuples()}
    set_coll = qs[qs["condition"] == "random"].groupby(["mode", "k"])["collapsed"].sum()
    for mode, el, sign in (("off", True, -1), ("on", False, +1)):
        prompts = st[(st["condition"] == "baseline") & (st["elicits"] == el)]
        if prompts.empty:
            continue
        b = float(prompts["base"].mean())
        scale = b if mode == "off" and b > 0 else 1.0
        for k in sorted({int(k) for k in st["k"] if k > 0}):
            sel = st[(st["mode"] == mode) & (st["k"] == k) & (st["elicits"] == el)]
            top = sel[sel["condition"] == "top"].set_index("prompt_id")
            if top.empty:
                continue
            change = sign * (top["outcome"] - top["base"]) / scale  # per prompt, the claimed direction
            rnd = sel[sel["condition"] == "random"]
            moved = rnd.assign(moved=sign * (rnd["outcome"] - rnd["base"]) / scale)
            per_set = moved.groupby("seed")["moved"].mean()
            rnd_prompt = moved.groupby("prompt_id")["moved"].mean()
            d = change - rnd_prompt.reindex(change.index).fillna(0.0)
            est, lo, hi = mean_ci(d.to_numpy())
            effect = float(change.mean())
            p = empirical_p(effect, per_set.to_list()) if len(per_set) else float("nan")
            out[f"{mode} k={k}"] = {
                "baseline": round(b, 4),
                "top": round(float(top["outcome"].mean()), 4),
                "effect": round(effect, 4),
                "random_mean": round(float(per_set.mean()), 4) if len(per_set) else None,
                "beyond_random": round(est, 4),
                "ci95": [round(lo, 4), round(hi, 4)],
                "random_sets": len(per_set),
                "random_sets_collapsed": int(set_coll.get((mode, k), 0)),
                "p_vs_random": round(p, 4),
                "n_prompts": len(change),
                "top_broken": round(float(top["broken"].mean()), 4),
                "top_collapsed": coll.get(("top", mode, k), False),
                "too_few_sets": len(per_set) < min_sets,
            }
    adj = holm([v["p_vs_random"] for v in out.values()])
    for v, pa in zip(out.values(), adj, strict=True):
        v["p_holm"] = round(pa, 4)
    return out


def switch_headline(v: dict[str, dict[str, Any]], gate: Gate, min_sets: int = MIN_RANDOM_SETS) -> Any:
    """The claim's primary comparison: top-k off at the smallest k (Holm-adjusted p)."""
    claim = CLAIMS["expert_switch"]
    offs = sorted((k for k in v if k.startswith("off")), key=lambda k: int(k.split("=")[1]))
    if not offs:
        return headline(claim, "no switch-off tested", float("nan"), None, "0 prompts", gates=[gate])
    key = offs[0]
    x = v[key]
    sets = Gate(
        "random sets",
        not x["too_few_sets"],
        f"{x['random_sets']} random k-sets ({x['random_sets_collapsed']} collapsed; needs {min_sets})",
    )
    collapse = (
        f"the top-{key.split('=')[1]} switch collapsed the model ({x['top_broken']:.0%} of responses broken)"
        if x["top_collapsed"]
        else None
    )
    return headline(
        claim,
        f"{key}: refusals {x['baseline']:.2f} -> {x['top']:.2f} (broken = no change), {x['effect']:+.0%} of the "
        f"baseline's cut vs {x['random_mean'] or 0:+.0%} by random sets, beyond random {x['beyond_random']:+.2f} "
        f"(p = {x['p_holm']:.3f} vs {x['random_sets']} random sets, Holm over {len(v)})",
        x["beyond_random"],
        (x["ci95"][0], x["ci95"][1]),
        f"{x['n_prompts']} prompts",
        p=x["p_holm"],
        gates=[gate, sets],
        collapse=collapse,
    )


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
