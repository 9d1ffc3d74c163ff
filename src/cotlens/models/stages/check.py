"""Stage ``models_check``: the self-checks of a prepared or built model
(:func:`cotlens.models.checks.check_prepared`), written as the report every model stage takes."""

from __future__ import annotations

from typing import Any

from cotlens.models.checks import check_prepared
from cotlens.pipeline.stage import Params, Paths, set_threads


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    set_threads(threads)
    return check_prepared(inputs["model"], outputs["report"], str(runtime.get("device", "auto")))
