"""Provenance in the workflow (issue #18): results follow the model's content, a moved
checkout reruns nothing, runs with other configs coexist, and a file of another model is
refused rather than mixed."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_workflow import edit_config, scheduled, smk

from cotlens.io.parquet import read_meta
from cotlens.studies import STUDIES

pytestmark = pytest.mark.integration

DIGIT_FIGURES = tuple(STUDIES["digits"].figures)
DIGITS = {"models_prepare", "models_check", "digits_prompts", "digits_confidence", "digits_figure"}


def digests(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_local_model_is_its_content_and_runs_coexist(
    tmp_path: Path, tiny_model_src: Path, make_workflow: Callable[..., Path], tiny_config: dict[str, Any]
) -> None:
    from cotlens.circuits.fewshot import prontoqa_corpus
    from cotlens.models.tiny import build_tiny_llama

    weights = tmp_path / "weights"
    shutil.copytree(tiny_model_src, weights)
    models = {**tiny_config["models"], "tiny": {"source": "local", "path": str(weights)}}
    wd = make_workflow(tmp_path / "wf", studies=["digits"], models=models)
    assert scheduled(wd) == DIGITS
    smk(wd)
    res = wd / "results" / "default" / "digits" / "tiny"
    manifest = yaml.safe_load((wd / "resources" / "models" / "tiny" / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(
        p.name for p in weights.iterdir() if p.suffix in (".json", ".safetensors")
    )
    assert read_meta(res / "confidence.parquet")["fingerprint"] == manifest["fingerprint"]
    assert scheduled(wd) == set()

    # A finished run copied to another path (a cluster's scratch, a colleague's disk) reruns nothing.
    moved = tmp_path / "moved"
    shutil.copytree(wd, moved, symlinks=True)
    assert scheduled(moved) == set()
    shutil.rmtree(moved)

    # Touching the weights re-hashes them, finds the same content, reruns nothing.
    for p in weights.iterdir():
        p.touch()
    assert scheduled(wd) == set()

    # New weights at the same path: the model is prepared again, and every stage made from it reruns.
    old = tmp_path / "old-confidence.parquet"
    shutil.copy2(res / "confidence.parquet", old)
    build_tiny_llama(weights, prontoqa_corpus(), seed=1)
    assert scheduled(wd) == DIGITS - {"digits_prompts"}
    smk(wd)
    new_fp = read_meta(res / "confidence.parquet")["fingerprint"]
    assert new_fp != manifest["fingerprint"]

    # A table of the old weights copied into place is refused, never plotted as the new model's.
    time.sleep(0.05)
    shutil.copyfile(old, res / "confidence.parquet")
    out = smk(wd, check=False)
    assert out.returncode != 0
    log = "".join(p.read_text() for p in (wd / "results" / "default" / "logs" / "digits_figure").glob("*.log"))
    assert f"was made from model 'tiny' with content {manifest['fingerprint'][:19]}" in log
    assert "the stage would mix two models" in log and "snakemake --forcerun digits_confidence" in log
    assert not list(res.glob("figures/.tmp-*"))
    smk(wd, "--forcerun", "digits_confidence")

    # A second run with another config sits beside the first and leaves it untouched.
    before = digests(wd / "results" / "default")
    edit_config(wd, "run", "seed1")
    edit_config(wd, "digits.prompts.seed", 1)
    edit_config(wd, "compare", {"runs": ["default"]})  # and the view across both runs
    assert scheduled(wd) == {
        "digits_prompts",
        "digits_confidence",
        "digits_figure",
        "compare_runs",
    }  # the model is shared
    smk(wd)
    assert digests(wd / "results" / "default") == before
    other = wd / "results" / "seed1" / "digits"
    assert (other / "tiny" / "figures" / "digit_confidence.png").is_file()
    assert (other / "prompts.parquet").read_bytes() != (
        wd / "results" / "default" / "digits" / "prompts.parquet"
    ).read_bytes()

    # The case: a prompts table of run seed1 (seed 1) copied into run default (seed 0).
    # The stage that reads it refuses it, naming both runs and the key that differs.
    edit_config(wd, "run", "default")
    edit_config(wd, "digits.prompts.seed", 0)
    edit_config(wd, "compare", {"runs": []})
    time.sleep(0.05)
    shutil.copyfile(other / "prompts.parquet", wd / "results" / "default" / "digits" / "prompts.parquet")
    assert "digits_confidence" in scheduled(wd)
    out = smk(wd, check=False)
    assert out.returncode != 0
    log = (wd / "results" / "default" / "logs" / "digits_confidence" / "tiny.log").read_text()
    assert "prompts.parquet was made by digits_prompts of run 'seed1', not this run 'default'" in log, log[-2000:]
    assert "seed: 1 -> 0" in log and "snakemake --forcerun digits_prompts" in log
