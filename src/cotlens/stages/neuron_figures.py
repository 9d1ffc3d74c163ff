"""Stage ``neuron figures``: thin dispatch from a figure name to its plot function."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cotlens.plotting import neurons as plots

FIGURES = {
    "neuron_ablation": plots.ablation,
    "neuron_activation": plots.activation_accuracy,
    "neuron_concepts": plots.concepts,
}


def run(
    name: str, runs: str, neurons: str, outputs: Sequence[str | os.PathLike[str]], model: str, dpi: int = 150
) -> None:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    FIGURES[name](runs, neurons, outputs, model, dpi)
