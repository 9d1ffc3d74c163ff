"""Stage ``models_train``: the MoE trained here from scratch (``source: train``, Study 4's
offline default; :func:`cotlens.models.moe_train.train_moe`)."""

from __future__ import annotations

from typing import Any

from cotlens.experts.prompts import training_corpus
from cotlens.models.moe_train import train_moe
from cotlens.pipeline.stage import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    """``params``: {name: registry entry} of the one model to train."""
    ((_, entry),) = params.items()
    return train_moe(entry, outputs["model"], training_corpus, threads)
