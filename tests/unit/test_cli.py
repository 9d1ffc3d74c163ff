"""The `cotlens` command line: your own model in one command, the figures a run expects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cotlens.errors import CotlensError
from cotlens.pipeline import cli


def test_model_overlay_registers_a_local_model_as_its_own_run(tmp_path: Path) -> None:
    model = tmp_path / "My Model 7B"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
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
    with pytest.raises(CotlensError, match="does not exist"):
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


def _model(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "config.json").write_text('{"model_type": "llama"}')
    (d / "model.safetensors").write_bytes(b"x")
    return d


def _checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "Snakefile").write_text("")
    (tmp_path / "config.yaml").write_text("run: default\nmodels: {smollm2-135m: {source: pypi}}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", ["x/../../config", "x/../../../../escaped", "..", "a" * 65, "-x", "a b", ""])
def test_a_bad_name_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    root = _checkout(tmp_path, monkeypatch)
    model = _model(tmp_path / "m")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    config = (root / "config.yaml").read_bytes()
    assert cli.main(["run", "--model", str(model), f"--name={name}"]) == 2
    assert "error: --name" in capsys.readouterr().err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written anywhere
    assert (root / "config.yaml").read_bytes() == config


def test_a_run_name_that_escapes_results_is_refused_by_report_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _checkout(tmp_path, monkeypatch)
    (root / "over.yaml").write_text("run: ../x\n")
    assert cli.main(["report", "--config", "over.yaml"]) == 2
    assert "run '../x' (over.yaml) contains '/'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (root / "results").exists()


def test_two_model_directories_with_one_name_never_share_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _checkout(tmp_path, monkeypatch)
    a, b = _model(tmp_path / "a" / "final"), _model(tmp_path / "b" / "final")
    first = cli.model_overlay(str(a))
    assert first == Path("config/local-final.yaml")
    kept = first.read_bytes()
    assert cli.model_overlay(str(a)) == first  # the same directory again: its own run
    with pytest.raises(CotlensError, match=rf"(?s)name .final. already stand for {a}.*--name final-2"):
        cli.model_overlay(str(b))
    assert first.read_bytes() == kept
    assert cli.model_overlay(str(b), "final-b").name == "local-final-b.yaml"
    # a prepared model of that name counts too (its overlay deleted), and so does a registry name
    first.unlink()
    (root / "resources" / "models" / "final").mkdir(parents=True)
    (root / "resources" / "models" / "final" / "manifest.json").write_text(
        json.dumps({"source": "local", "path": str(a)})
    )
    with pytest.raises(CotlensError, match=rf"already stand for {a}"):
        cli.model_overlay(str(b))
    with pytest.raises(CotlensError, match="the registry model 'smollm2-135m' of config.yaml"):
        cli.model_overlay(str(b), "smollm2-135m")
    Path("more.yaml").write_text("models: {mine: {source: pypi, id: qwen2.5-0.5b}}\n")  # a --config overlay's entry
    with pytest.raises(CotlensError, match="the registry model 'mine' of config.yaml, more.yaml"):
        cli.model_overlay(str(b), "mine", configs=["more.yaml"])
    # names in other scripts stay distinct (they all became `local` before)
    assert cli.model_overlay(str(_model(tmp_path / "模型"))).name == "local-模型.yaml"
    assert cli.model_overlay(str(_model(tmp_path / "модель"))).name == "local-модель.yaml"
    assert capsys.readouterr().err == ""


def test_config_and_model_overlays_are_merged_into_the_one_file_snakemake_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _checkout(tmp_path, monkeypatch)
    (tmp_path / "two.yaml").write_text("studies: [digits, neurons]\ndigits: {seed: 3}\n")
    overlay = cli.model_overlay(str(_model(tmp_path / "m")))
    cmd = cli.snakemake_command(["two.yaml", str(overlay)], ["-n"])
    assert cmd.count("--configfile") == 1
    merged = yaml.safe_load(Path(cmd[cmd.index("--configfile") + 1]).read_text())
    assert merged["studies"] == ["digits", "neurons"] and merged["digits"] == {"seed": 3}
    assert merged["run"] == "m" and merged["active_models"] == ["m"]
    assert cli.snakemake_command(["two.yaml"])[-1] == "two.yaml"  # one overlay: as it is


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "config file {p} does not exist"),
        (lambda p: p.mkdir(), "config file {p} is a directory"),
        (lambda p: p.write_text("- a\n- b\n"), "config file {p} holds a YAML list, not a mapping"),
    ],
)
def test_a_config_that_is_not_a_settings_file_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make: Any, message: str
) -> None:
    _checkout(tmp_path, monkeypatch)
    p = Path("over.yaml")
    make(p)
    assert cli.main(["run", "--config", str(p), "--model", str(_model(tmp_path / "m"))]) == 2
    assert message.format(p=p) in capsys.readouterr().err
    assert not Path("config").exists()  # the model overlay was not written


def test_a_symlink_loop_as_model_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _checkout(tmp_path, monkeypatch)
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    assert cli.main(["run", "--model", str(tmp_path / "l1")]) == 2
    assert f"--model {tmp_path / 'l1'}: is a symlink loop" in capsys.readouterr().err


def test_ctrl_c_says_what_happened_and_how_to_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _checkout(tmp_path, monkeypatch)

    def interrupted(*a: Any, **k: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main(["run"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "`cotlens run` again resumes" in err


def test_a_partial_run_without_figures_ends_with_a_note_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _checkout(tmp_path, monkeypatch)
    assert cli.report([], after_run=True) == 0
    assert "no figures under results/default/ yet, so no report" in capsys.readouterr().out
    with pytest.raises(CotlensError, match="no figures under results/default"):
        cli.report([])


def test_outputs_an_interrupted_stage_left_missing_are_forced_when_the_config_makes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import socket

    from cotlens.io.atomic import interrupted

    _checkout(tmp_path, monkeypatch)
    Path("config.yaml").write_text(
        "run: default\nstudies: [circuits]\nactive_models: [m]\nexperts: {models: []}\nmodels: {m: {}}\n"
    )
    res = Path("results/default/circuits")
    (res / "m" / "activations.partial").mkdir(parents=True)
    (res / "m" / "activations.partial" / f".tmp-part-00001.parquet-1@{socket.gethostname()}-x1").write_text("")
    (res / "m" / "lens.parquet").write_text("done")  # made earlier, from the old activations
    dead = f".tmp-patching.parquet-99999999@{socket.gethostname()}-abc123"
    (res / "m" / dead).write_text("")
    (res / "m" / f".tmp-pairs.parquet-{os.getpid()}@{socket.gethostname()}-abc123").write_text("")  # live
    (res / "gone" / "samples.parquet.partial").mkdir(parents=True)  # a model the config dropped
    # killed after Snakemake removed the output and marked it incomplete, before the stage wrote
    # anything: Snakemake's own record (a long path is cut into @-directories)
    from base64 import urlsafe_b64encode

    marks = Path(".snakemake/incomplete")
    for f in (res / "m" / "probe.parquet", res / "m" / ("d" * 120) / ("e" * 120) / "f.parquet"):
        b64 = urlsafe_b64encode(str(f).encode()).decode()
        chunks = [b64[i : i + 254] for i in range(0, len(b64), 254)]
        rec = marks.joinpath(*["@" + c for c in chunks[:-1]], chunks[-1])
        rec.parent.mkdir(parents=True, exist_ok=True)
        rec.write_text("{}")
    (marks / "migration_underway").write_text("")
    found = interrupted("results/default")
    assert found == sorted(
        [
            res / "gone" / "samples.parquet",
            res / "m" / "activations",
            res / "m" / "patching.parquet",
            res / "m" / "probe.parquet",
            res / "m" / ("d" * 120) / ("e" * 120) / "f.parquet",
        ]
    )
    forced = [str(p) for p in found if "gone" not in str(p)]
    assert cli._resume_interrupted([]) == forced
    assert cli.with_forced(["-n"], forced) == ["-n", "--forcerun", *forced]
    # beside the user's own -R (Snakemake keeps only the last of a repeated flag)
    assert cli.with_forced(["-R", "circuits_lens", "--cores", "2"], forced) == [
        "-R",
        *forced,
        "circuits_lens",
        "--cores",
        "2",
    ]
    (res / "m" / "activations").mkdir()  # the outputs are there: nothing to force
    for f in map(Path, forced):
        if f.name == "activations":
            continue
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("done")
    assert cli._resume_interrupted([]) == []
