"""Shared figure I/O: PNG + PDF written atomically with fixed metadata, so that the same
data gives the same bytes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cotlens.io.atomic import atomic_path

# The one plot-function signature: ``plot(inputs, outputs, model, dpi) -> numbers``;
# ``inputs`` maps table names (cotlens.studies) to Parquet paths, ``outputs`` are the PNG
# and PDF to write, and the returned dict (the numbers the title reports) becomes the
# figure's JSON (written by the figure stage).
FigureFiles = Sequence[str | os.PathLike[str]]  # a figure's output files (PNG, PDF)
Inputs = Mapping[str, str]

_META = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}}


def save_json(outputs: Sequence[str | os.PathLike[str]], data: Mapping[str, Any]) -> None:
    """The numbers a figure's title reports, atomically, beside its first output (``.json``)."""
    with atomic_path(Path(outputs[0]).with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def titles(fig: plt.Figure) -> list[str]:
    """The titles drawn on ``fig`` (its suptitle, then each axes' title), as drawn."""
    sup = fig.get_suptitle()
    return [t for t in (sup, *(ax.get_title() for ax in fig.axes)) if t]


def save(fig: plt.Figure, outputs: Sequence[str | os.PathLike[str]], dpi: int = 150) -> list[str]:
    """Write ``fig`` to every output; returns its titles (a tested figure stores them beside
    its headline, so a test can hold the two to one statement)."""
    drawn = titles(fig)
    for out in outputs:
        fmt = Path(out).suffix.lstrip(".")
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=_META.get(fmt))
    plt.close(fig)
    return drawn


def refused(outputs: Sequence[str | os.PathLike[str]], title: str, dpi: int = 150) -> list[str]:
    """A figure that was not computed: its title says why (a stage refused the method on
    this model); no axes, no number."""
    fig = plt.figure(figsize=(8, 1.6))
    fig.suptitle(title, fontsize=9)
    return save(fig, outputs, dpi)
