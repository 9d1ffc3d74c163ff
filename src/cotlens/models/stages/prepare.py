"""Stage ``models_prepare``: a registry entry (pypi, hub or local) as a prepared model
directory (see :func:`cotlens.models.prepare.prepare`)."""

from __future__ import annotations

from typing import Any

from cotlens.models.prepare import prepare
from cotlens.models.registry import resolve
from cotlens.pipeline.stage import Params, Paths, set_threads


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    """``params``: {name: registry entry} of the one model to prepare."""
    (name,) = params
    set_threads(threads)  # the torch ops of a conversion stay on the cores the profile gives
    return prepare(resolve(name, params), outputs["model"])
