"""Stage ``circuit figures``: dispatch from a figure name to its plot; the numbers each
title reports are also written to a JSON file beside the figure."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

from cotlens.atomic import atomic_path
from cotlens.plotting.circuits import FIGURES


def run(
    name: str, inputs: Mapping[str, str], outputs: Sequence[str | os.PathLike[str]], summary: str | os.PathLike[str],
    model: str, dpi: int = 150,
) -> None:  # fmt: skip
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(FIGURES)}")
    numbers = FIGURES[name](inputs, outputs, model, dpi)
    with atomic_path(summary) as tmp:
        tmp.write_text(json.dumps(numbers, indent=1, sort_keys=True, default=str) + "\n")
