"""Stage ``digits_figure``: one figure of the study (the ``{figure}`` wildcard; see
:data:`cotlens.plotting.digits.FIGURES`), its numbers written to the JSON beside it."""

from __future__ import annotations

from typing import Any

from cotlens.plotting import digits as plots
from cotlens.stages.common import Params, Paths
from cotlens.stages.draw import draw_figure


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    return draw_figure(plots.FIGURES, inputs, outputs, params)
