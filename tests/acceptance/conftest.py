"""Acceptance fixtures: the session's one uninterrupted local run of the tiny DAG
(``tiny_run`` in tests/conftest.py), the reference that killed-and-resumed runs and the
SLURM run must equal byte for byte."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dag import digests
from tiny_dag import accept_overrides


@pytest.fixture(scope="session")
def reference(tiny_run: Path) -> dict[str, str]:
    """Digests of the session's uninterrupted local run of the acceptance DAG."""
    out = digests(tiny_run)
    assert any(k.endswith("patching.parquet") for k in out) and any(k.endswith(".pdf") for k in out)
    return out


@pytest.fixture
def accept_copy(tmp_path: Path, make_workflow: Callable[..., Path], tiny_config: dict[str, Any]) -> Path:
    return make_workflow(tmp_path / "wd", **accept_overrides(tiny_config))
