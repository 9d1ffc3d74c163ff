"""Shared fixtures: a tiny random-init Llama (no download) and a scratch copy of the
workflow, so tests never touch the repository's own results or file times."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_dag import accept_overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def device() -> str:
    """Where the engine-equality tests run: ``COTLENS_TEST_DEVICE=cuda`` on a GPU machine, else cpu."""
    dev = os.environ.get("COTLENS_TEST_DEVICE", "cpu")
    if dev.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            pytest.fail(f"COTLENS_TEST_DEVICE={dev} but torch sees no CUDA device; unset it to test on cpu")
    return dev


@pytest.fixture(scope="session")
def tiny_model_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cotlens.circuits.fewshot import prontoqa_corpus
    from cotlens.models.tiny import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny") / "src", prontoqa_corpus())


@pytest.fixture(scope="session")
def tiny_prepared(tiny_model_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cotlens.models.prepare import prepare
    from cotlens.models.registry import resolve

    out = tmp_path_factory.mktemp("prepared") / "tiny"
    prepare(resolve("tiny", {"tiny": {"source": "local", "path": str(tiny_model_src)}}), out)
    return out


# The tiny configuration of the whole DAG (every study on the tiny models, built by the
# models_train rule): the tests start from it, as `snakemake --directory .test` does.
TEST_CONFIG = ROOT / ".test" / "config.yaml"


def load_test_config() -> dict[str, Any]:
    """.test/config.yaml with the schema's defaults filled, as Snakemake's validate fills them."""
    from cotlens.pipeline.stageparams import with_defaults

    return with_defaults(yaml.safe_load(TEST_CONFIG.read_text()))


def copy_workflow(dest: Path, **overrides: object) -> Path:
    """The workflow files in ``dest`` with ``.test/config.yaml`` as its config
    (``overrides`` replace top-level config sections)."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in ("Snakefile", "workflow", "scripts", "src", "envs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest / item)
    cfg = load_test_config()
    cfg.update(overrides)
    (dest / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


@pytest.fixture(scope="session")
def make_workflow() -> Callable[..., Path]:
    """``make_workflow(dest, **overrides)``: a configured copy of the workflow (see ``copy_workflow``)."""
    return copy_workflow


@pytest.fixture(scope="session")
def tiny_config() -> dict[str, Any]:
    return load_test_config()


def _run_tiny_dag(wd: Path) -> None:
    import subprocess
    import sys

    copy_workflow(wd, **accept_overrides(load_test_config()))
    res = subprocess.run(
        [sys.executable, "-m", "snakemake", "-d", str(wd), "-s", str(wd / "Snakefile"), "--cores", "2"],
        cwd=wd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if res.returncode != 0:
        raise AssertionError(f"the tiny run failed:\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test``: two workers on two cores) each worker's own torch
    work runs on one thread: torch's default is every core, so two workers ran four
    threads on two cores. (Snakemake jobs the tests start set their own: one without a
    profile.)"""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """One uninterrupted local run of the tiny DAG of Studies 1 and 3 (``accept_overrides``),
    made once per session and shared: the workflow test starts from a copy of it, and the
    resumed and SLURM runs must equal it byte for byte. Read-only: copy it to change it.
    Under pytest-xdist (``make test``: two workers) the first worker that needs it makes it
    in the session's shared temp directory, under a file lock; the other waits and reads it."""
    from filelock import FileLock

    if worker_id == "master":  # no xdist
        wd = tmp_path_factory.mktemp("tiny-run") / "wd"
        _run_tiny_dag(wd)
        return wd
    shared = tmp_path_factory.getbasetemp().parent  # the same directory for every worker
    wd, done = shared / "tiny-run" / "wd", shared / "tiny-run" / "done"
    with FileLock(str(shared / "tiny-run.lock")):
        if not done.exists():
            if wd.exists():  # a worker that failed half way: start again
                shutil.rmtree(wd)
            _run_tiny_dag(wd)
            done.touch()
    return wd


@pytest.fixture
def tiny_run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished tiny run (file times kept: nothing is stale in it)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "wd", symlinks=True))


@pytest.fixture
def workflow_copy(tmp_path: Path) -> Path:
    """The workflow files in a scratch directory, configured for the tiny models, Studies
    1 and 3 (the branches of Studies 2 and 4 have tests of their own)."""
    return copy_workflow(tmp_path, studies=["circuits", "digits"])
