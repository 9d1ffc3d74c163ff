"""Stage ``models_tiny``: the tiny random-init Llama of the ``.test/`` configuration
(``source: tiny``; :func:`cotlens.models.tiny.build_tiny`)."""

from __future__ import annotations

from typing import Any

from cotlens.circuits.fewshot import prontoqa_corpus
from cotlens.models.tiny import build_tiny
from cotlens.pipeline.stage import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    """``params``: {name: registry entry} of the one model to build."""
    ((_, entry),) = params.items()
    return build_tiny(entry, outputs["model"], prontoqa_corpus())
