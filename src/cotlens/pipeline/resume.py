"""The resume key of a sharded stage (:class:`cotlens.io.shards.Shards`): everything its
shards depend on. Its own module, so that only the resumable stages reach the model
loader and the code digest through it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cotlens.io.shards import file_digest


def resume_key(code: str, cfg: Mapping[str, Any], runtime: Mapping[str, Any], *upstream: str | Path) -> dict[str, Any]:
    """What a resumable stage's shards depend on, so that a resumed stage never mixes two
    versions of anything in one output:

    - ``code``: the stage's module (``__name__``); the bytes of its import closure
      (:func:`cotlens.io.codedeps.code_digest`, the files its rule lists as ``code``);
    - the versions of the libraries that shape the numbers (torch, transformers, ...);
    - its config, and the runtime with the device it resolves to (a retry on another kind
      of node must not mix shards);
    - the bytes of its upstream files (the model manifest among them)."""
    from cotlens.io.codedeps import code_digest
    from cotlens.io.parquet import library_versions
    from cotlens.models.loading import pick_device

    device = str(pick_device(str(runtime.get("device", "auto"))).type)
    return {
        **dict(cfg),
        "_runtime": {**dict(runtime), "resolved_device": device},
        "_upstream": file_digest(*upstream),
        "_code": code_digest(code),
        "_versions": library_versions(),
    }
