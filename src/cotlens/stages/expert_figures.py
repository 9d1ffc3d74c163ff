"""Stage ``figure_experts``: thin dispatch from a figure name to its plot function."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cotlens.plotting.experts import FIGURES


def run(
    name: str, ftri: str, runs: str, prompts: str, outputs: Sequence[str | os.PathLike[str]], model: str, dpi: int = 150
) -> None:
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    FIGURES[name](ftri, runs, prompts, outputs, model, dpi)
