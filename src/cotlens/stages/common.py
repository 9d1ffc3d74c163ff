"""Shared helpers of the model stages: runtime settings and provenance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cotlens.parquet import RunMeta, config_hash


def model_meta(stage: str, cfg: Mapping[str, Any], manifest: Mapping[str, Any], dtype: str, **extra: Any) -> RunMeta:
    return RunMeta(
        stage=stage,
        config_hash=config_hash(dict(cfg)),
        model=str(manifest.get("name")),
        revision=str(manifest.get("revision")),
        dtype=dtype,
        extra=extra,
    )


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))
