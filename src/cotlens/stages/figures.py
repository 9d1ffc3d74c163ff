"""Stage ``figures``: thin dispatch from a figure name to its plot function."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from cotlens.plotting import prontoqa as plots


def run(
    name: str, inputs: Mapping[str, str], outputs: Sequence[str | os.PathLike[str]], model: str, dpi: int = 150
) -> None:
    if name == "accuracy":
        plots.accuracy(inputs["prompts"], inputs["samples"], outputs, model, dpi)
    elif name == "step_accuracy":
        plots.step_accuracy(inputs["prompts"], inputs["samples"], outputs, model, dpi)
    elif name == "lens_heatmap":
        plots.lens_heatmap(inputs["lens"], outputs, model, dpi)
    else:
        raise ValueError(f"unknown figure {name!r}")
