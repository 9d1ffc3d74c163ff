"""The figure stages' shared step: draw one figure, write its numbers (JSON) and its
report tables (HTML). Only the figure stages import it, so editing the summary or
the report tables reruns figures, not models."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cotlens.core.verdicts import CLAIMS, NOT_TESTABLE, Headline
from cotlens.io import figures as base
from cotlens.io.atomic import write_text
from cotlens.pipeline.stage import Params, Paths, refusal
from cotlens.pipeline.summary import figure_html

Figure = Callable[[Paths, Sequence[str], str, int], dict[str, Any]]


def draw_figure(figures: Mapping[str, Figure], inputs: Paths, outputs: Paths, params: Params) -> dict[str, Any]:
    """One figure of a study: its plot function draws ``outputs`` png and pdf and returns
    the numbers its title reports, written here to ``outputs["json"]`` and, as tables for
    the report, to ``outputs["html"]`` (cotlens.pipeline.summary.figure_html)."""
    name = str(params["figure"])
    if name not in figures:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(figures)}")
    paths, model, dpi = [outputs["png"], outputs["pdf"]], str(params["model"]), int(params["dpi"])
    why = refusal(inputs)
    numbers = refused_figure(name, paths, model, dpi, why) if why else figures[name](inputs, paths, model, dpi)
    text = json.dumps(numbers, indent=1, sort_keys=True, default=str)
    write_text(outputs["json"], text + "\n")
    study = Path(outputs["json"]).parts[-4]  # results/<run>/<study>/<model>/figures/<figure>.json
    write_text(outputs["html"], figure_html(study, str(params["model"]), name, json.loads(text)))
    return numbers


def refused_figure(figure: str, paths: Sequence[str], model: str, dpi: int, why: str) -> dict[str, Any]:
    """The figure of a method a stage refused on this model: its title, its JSON and (for a
    tested figure) its summary row say "not testable on this model" and why."""
    claim = CLAIMS.get(figure)
    h = Headline(figure, "not computed", None, None, "0", NOT_TESTABLE, why) if claim else None
    title = h.title(model) if h else f"{model}: not computed\n({why})"
    drawn = base.refused(paths, title, dpi)
    return {"refused": why, "drawn_titles": drawn, **({"headline": h.to_json()} if h else {})}
