"""Shared helpers of the model stages: runtime settings and provenance."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cotlens.parquet import RunMeta, config_hash


def file_digest(*paths: str | Path) -> str:
    """Content hash of upstream files (the resume key of sharded outputs)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


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
