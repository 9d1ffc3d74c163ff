"""Acceptance fixtures: one uninterrupted local run of the tiny DAG, the reference that
killed-and-resumed runs and the SLURM run must equal byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dag import accept_overrides, digests, smk


@pytest.fixture(scope="session")
def reference(
    tmp_path_factory: pytest.TempPathFactory, make_workflow: Callable[..., Path], tiny_config: dict[str, Any]
) -> dict[str, str]:
    """Digests of one uninterrupted local run of the acceptance DAG."""
    wd = make_workflow(tmp_path_factory.mktemp("reference"), **accept_overrides(tiny_config))
    smk(wd, "--cores", "2")
    out = digests(wd)
    assert any(k.endswith("patching.parquet") for k in out) and any(k.endswith(".pdf") for k in out)
    return out


@pytest.fixture
def accept_copy(tmp_path: Path, make_workflow: Callable[..., Path], tiny_config: dict[str, Any]) -> Path:
    return make_workflow(tmp_path / "wd", **accept_overrides(tiny_config))
