"""Stage ``experts_figure``: one figure of the study (the ``{figure}`` wildcard; see
:data:`cotlens.experts.figures.FIGURES`), its numbers written to the JSON beside it."""

from __future__ import annotations

from typing import Any

from cotlens.experts import figures as plots
from cotlens.experts import findings
from cotlens.pipeline.draw import draw_figure
from cotlens.pipeline.stage import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    return draw_figure(plots.FIGURES, findings.CLAIMS, inputs, outputs, params)
