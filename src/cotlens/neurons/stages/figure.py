"""Stage ``neurons_figure``: one figure of the study (the ``{figure}`` wildcard; see
:data:`cotlens.neurons.figures.FIGURES`), its numbers written to the JSON beside it."""

from __future__ import annotations

from typing import Any

from cotlens.neurons import figures as plots
from cotlens.neurons import findings
from cotlens.pipeline.draw import draw_figure
from cotlens.pipeline.stage import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    return draw_figure(plots.FIGURES, findings.CLAIMS, inputs, outputs, params)
