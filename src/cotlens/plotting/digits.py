"""Digit-confidence figures (Gambardella et al., 2024)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from cotlens.parquet import read_table
from cotlens.plotting.base import save

Paths = Sequence[str | os.PathLike[str]]


def load(digits: str | os.PathLike[str]) -> pd.DataFrame:
    df = read_table(digits).to_pandas()
    df["first"] = df["place"] == 0
    df["last"] = df["place"] == df["n_places"] - 1
    df["correct"] = (df["argmax_digit"] == df["digit"]).astype(float)
    return df


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (n, m): first-digit confidence, last digit direct and conditioned."""
    full = df[df["setting"] == "full"]
    out = pd.DataFrame(
        {
            "first": full[full["first"]].groupby(["n", "m"])["p_correct"].mean(),
            "last_conditioned": full[full["last"]].groupby(["n", "m"])["p_correct"].mean(),
            "last_direct": df[df["setting"] == "direct"].groupby(["n", "m"])["p_correct"].mean(),
        }
    )
    return out.reset_index()


def confidence_heatmaps(digits: str | os.PathLike[str], outputs: Paths, model: str, dpi: int = 150) -> pd.DataFrame:
    s = summary(load(digits))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 4), sharey=True)
    for ax, col, title in (
        (axes[0], "first", "first digit"),
        (axes[1], "last_conditioned", "last digit (correct higher digits given)"),
    ):
        piv = s.pivot(index="n", columns="m", values=col)
        sns.heatmap(piv, ax=ax, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", cbar=ax is axes[1])
        ax.set_title(title)
        ax.set_xlabel("m (digits of b)")
    axes[0].set_ylabel("n (digits of a)")
    fig.suptitle(f"{model}: confidence in the correct digit, a (n digits) * b (m digits)", y=1.02)
    save(fig, outputs, dpi)
    return s


def conditioning(digits: str | os.PathLike[str], outputs: Paths, model: str, dpi: int = 150) -> pd.DataFrame:
    s = summary(load(digits))
    s["cell"] = s["n"].astype(str) + "x" + s["m"].astype(str)
    long = s.melt(
        id_vars=["cell", "n", "m"], value_vars=["last_direct", "last_conditioned"], var_name="setting", value_name="p"
    )
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(s)), 3.8))
    sns.barplot(data=long, x="cell", y="p", hue="setting", ax=ax)
    big = s.sort_values(["n", "m"]).iloc[-1]
    ax.set_title(
        f"{model}: last-digit confidence; at {big['cell']}: direct {big['last_direct']:.2f} -> "
        f"conditioned {big['last_conditioned']:.2f} (paper, 5x5: Llama-2-13B 0.13 -> 0.43)"
    )
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", rotation=90)
    save(fig, outputs, dpi)
    return s


def accuracy_by_position(digits: str | os.PathLike[str], outputs: Paths, model: str, dpi: int = 150) -> pd.DataFrame:
    df = load(digits)
    full = df[(df["setting"] == "full") & (df["n"] == df["m"])].copy()
    full["cell"] = full["n"].astype(str) + "x" + full["m"].astype(str)
    acc = full.groupby(["cell", "place"])["correct"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    sns.lineplot(data=acc, x="place", y="correct", hue="cell", marker="o", ax=ax)
    ax.set_xlabel("digit place (0 = most significant)")
    ax.set_ylabel("greedy accuracy (teacher-forced)")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{model}: accuracy by digit position")
    save(fig, outputs, dpi)
    return acc
