"""The `cotlens` command line: your own model in one command, the figures a run expects."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cotlens import cli
from cotlens.errors import CotlensError


def test_model_overlay_registers_a_local_model_as_its_own_run(tmp_path: Path) -> None:
    model = tmp_path / "My Model 7B"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"x")
    out = cli.model_overlay(str(model), where=tmp_path / "config")
    assert out == tmp_path / "config" / "local-my-model-7b.yaml"
    overlay = yaml.safe_load(out.read_text())
    assert overlay == {
        "run": "my-model-7b",
        "active_models": ["my-model-7b"],
        "models": {"my-model-7b": {"source": "local", "path": str(model)}},
    }
    assert cli.model_overlay(str(model), "mine", where=tmp_path).name == "local-mine.yaml"


def test_model_overlay_refuses_what_is_not_a_model_directory(tmp_path: Path) -> None:
    with pytest.raises(CotlensError, match="no such directory"):
        cli.model_overlay(str(tmp_path / "absent"), where=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CotlensError, match="has no config.json"):
        cli.model_overlay(str(tmp_path / "empty"), where=tmp_path)
    assert not list(tmp_path.glob("local-*.yaml"))  # nothing written for a refused model


def test_expected_figures_follow_the_merged_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {"run": "default", "studies": ["digits"], "active_models": ["a"], "experts": {"models": ["moe"]}}
        )
    )
    (tmp_path / "over.yaml").write_text(yaml.safe_dump({"run": "x", "studies": ["digits", "experts"]}))
    monkeypatch.chdir(tmp_path)
    figs = cli._expected_figures(["over.yaml"])
    assert "results/x/digits/a/figures/digit_conditioning.json" in figs
    assert "results/x/experts/moe/figures/expert_switch.json" in figs and len(figs) == 6


def test_report_without_figures_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Snakefile").write_text("")
    (tmp_path / "config.yaml").write_text("run: empty\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report"]) == 2
