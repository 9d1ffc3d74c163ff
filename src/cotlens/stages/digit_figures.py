"""Stage ``digit figures``: thin dispatch from a figure name to its plot function."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cotlens.plotting import digits as plots

FIGURES = {
    "digit_confidence": plots.confidence_heatmaps,
    "digit_conditioning": plots.conditioning,
    "digit_accuracy": plots.accuracy_by_position,
}


def run(name: str, digits: str, outputs: Sequence[str | os.PathLike[str]], model: str, dpi: int = 150) -> None:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    FIGURES[name](digits, outputs, model, dpi)
