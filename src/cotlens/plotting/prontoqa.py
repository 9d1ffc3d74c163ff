"""PrOntoQA spine figures: accuracy, step accuracy, logit-lens heatmap."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import PowerNorm

from cotlens.parquet import read_table
from cotlens.plotting.base import save

ONTOLOGY_ORDER = ["fictional", "true", "false"]


def load_scored(prompts: str | Path, samples: str | Path) -> pd.DataFrame:
    p = read_table(
        prompts, columns=["prompt_id", "ontology", "hops", "distractors", "negation", "gold_cot"]
    ).to_pandas()
    s = read_table(
        samples, columns=["prompt_id", "sample_idx", "answer", "answer_correct", "step_correct", "cot_exact"]
    ).to_pandas()
    return s.merge(p, on="prompt_id", validate="many_to_one")


def accuracy(
    prompts: str | Path, samples: str | Path, outputs: Sequence[str | os.PathLike[str]], model: str, dpi: int = 150
) -> pd.DataFrame:
    """Answer accuracy by hops, one line per ontology, one panel per distractor setting."""
    df = load_scored(prompts, samples)
    df["accuracy"] = df["answer_correct"].astype(float)
    g = sns.catplot(
        data=df, x="hops", y="accuracy", hue="ontology", col="distractors", kind="point",
        hue_order=[o for o in ONTOLOGY_ORDER if o in set(df["ontology"])], errorbar=("ci", 95),
        height=3.2, aspect=1.1, dodge=0.2, seed=0,
    )  # fmt: skip
    for ax in g.axes.flat:
        ax.axhline(0.5, ls=":", c="grey", lw=1)
        ax.set_ylim(-0.05, 1.05)
    g.figure.suptitle(f"{model}: answer accuracy (chance 0.5)", y=1.03)
    save(g.figure, outputs, dpi)
    return df.groupby(["ontology", "hops"])["accuracy"].mean().reset_index()


def step_accuracy(
    prompts: str | Path, samples: str | Path, outputs: Sequence[str | os.PathLike[str]], model: str, dpi: int = 150
) -> pd.DataFrame:
    """Fraction of samples whose CoT step i equals gold step i, by step and hops."""
    df = load_scored(prompts, samples)
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
    return st.groupby(["hops", "step"])["correct"].mean().reset_index()


def lens_table(lens: str | Path) -> pd.DataFrame:
    df = read_table(
        lens, columns=["pos_kind", "step", "layer", "p_context", "p_prior", "context_token", "prior_token"]
    ).to_pandas()
    df["where"] = np.where(df["pos_kind"] == "step_end", "step " + df["step"].astype(str), df["pos_kind"])
    return df


def lens_heatmap(
    lens: str | Path, outputs: Sequence[str | os.PathLike[str]], model: str, dpi: int = 150
) -> pd.DataFrame:
    """Mean lens probability of the in-context token and of the no-context prior token,
    layer x position, over positions where the two predictions differ (positions seen
    fewer than 3 times are dropped)."""
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
    return df.groupby("layer")[["p_context", "p_prior"]].mean().reset_index()
