"""The tiny DAG shared by the workflow, resume and SLURM tests (tests/conftest.py runs it once)."""

from __future__ import annotations

from typing import Any


def accept_overrides(tiny: dict[str, Any]) -> dict[str, Any]:
    """Studies 1 and 3 of the tiny config with several shards in each resumable stage: 8
    prompts in 2 sample batches, 8 samples in 3 extract shards, the pairs in shards of 2."""
    patch = {**tiny["circuits"]["patch"], "shard_pairs": 2}
    return {"studies": ["circuits", "digits"], "circuits": {**tiny["circuits"], "patch": patch}}
