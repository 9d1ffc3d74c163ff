"""The whole DAG on a tiny random-init Llama, partial reruns, and config errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cotlens.core.verdicts import VERDICTS, Headline
from cotlens.io.logs import job_time
from cotlens.io.parquet import read_meta, read_table
from cotlens.models.checks import PREPARED

pytestmark = pytest.mark.integration

# rule names are <study>_<stage> (cotlens.studies); each study has one figure rule
MODEL_RULES = {"circuits_sample", "circuits_lens"}
DIGIT_RULES = {"digits_prompts", "digits_confidence", "digits_figure"}
CIRCUIT_MODEL_RULES = {"circuits_pairs", "circuits_patch", "circuits_heads", "circuits_sufficiency", "circuits_probe"}
CIRCUIT_RULES = {*MODEL_RULES, *CIRCUIT_MODEL_RULES, "circuits_figure"}


def smk(wd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(wd / "src")}
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "-d", str(wd), "-s", str(wd / "Snakefile"), *args]
    res = subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=900)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def cotlens(wd: Path, *args: str) -> str:
    """The cotlens command line in the workflow copy ``wd`` (its stdout)."""
    env = {**os.environ, "PYTHONPATH": str(wd / "src")}
    res = subprocess.run(
        [sys.executable, "-m", "cotlens.pipeline.cli", *args], cwd=wd, env=env, capture_output=True, text=True
    )
    if res.returncode != 0:
        raise AssertionError(f"cotlens {args} failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res.stdout


def scheduled(wd: Path) -> set[str]:
    """Rules a dry run would execute (parsed from its job table), minus the target rule."""
    out = smk(wd, "-n").stdout
    if "Nothing to be done" in out:
        return set()
    table = out.split("Job stats:")[1].split("total")[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+\s*$", table, re.M)} - {"all", "job"}


def edit(path: Path) -> None:
    """A real edit (Snakemake compares checksums of small inputs, so a bare touch is ignored)."""
    time.sleep(0.05)  # a strictly newer mtime than the outputs
    with open(path, "a") as fh:
        fh.write("# edited\n")


def edit_config(wd: Path, where: str, value: object) -> None:
    """Set the config key at the dotted path ``where`` (e.g. ``circuits.lens.batch_rows``)."""
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    *path, key = where.split(".")
    node = cfg
    for part in path:
        node = node[part]
    node[key] = value
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_dag_end_to_end_then_partial_reruns(workflow_copy: Path, tiny_run_copy: Path) -> None:
    # what a fresh checkout plans; the session's tiny run (tests/conftest.py) is that run done
    assert scheduled(workflow_copy) == {"models_tiny", "models_check", "circuits_prompts", *DIGIT_RULES, *CIRCUIT_RULES}
    wd = tiny_run_copy
    assert scheduled(wd) == set()  # a finished run, copied: nothing is stale
    report = json.loads((wd / "resources" / "checks" / "tiny.json").read_text())
    assert report["adapter"]["family"] == "llama"
    assert {k: v["ok"] for k, v in report["checks"].items()} == dict.fromkeys(PREPARED, True)
    res = wd / "results" / "default" / "circuits" / "tiny"
    for fig in ("accuracy", "step_accuracy", "lens_heatmap"):
        for ext in ("png", "pdf"):
            assert (res / "figures" / f"{fig}.{ext}").stat().st_size > 1000
        assert json.loads((res / "figures" / f"{fig}.json").read_text())  # the numbers, written by the stage
    acts = read_table(res / "activations")
    lens = read_table(res / "lens.parquet")
    samples = read_table(res / "samples.parquet")
    assert acts.num_rows == lens.num_rows > 0
    assert set(acts.column("layer").to_pylist()) == {0, 1}
    assert "mlp" in acts.column_names
    assert read_meta(res / "lens.parquet")["model"] == "tiny"
    lt = lens.to_pandas()
    assert (lt[lt["layer"] == 1]["rank_context"] == 0).all()  # last-layer lens = the model's prediction
    assert samples.num_rows == read_table(wd / "results" / "default" / "circuits" / "prompts.parquet").num_rows
    assert not list(res.glob("*.partial")) and not list(res.rglob(".tmp-*"))
    dig = read_table(wd / "results" / "default" / "digits" / "tiny" / "confidence.parquet").to_pandas()
    assert set(dig["setting"]) == {"conditioned", "unconditioned"} and dig["p_correct"].between(0, 1).all()
    assert (dig["p_std"] > 0).any()  # MC dropout on
    for fig in ("digit_confidence", "digit_conditioning", "digit_accuracy"):
        assert (wd / "results" / "default" / "digits" / "tiny" / "figures" / f"{fig}.png").stat().st_size > 1000
        assert (wd / "results" / "default" / "digits" / "tiny" / "figures" / f"{fig}.json").stat().st_size > 10
    pairs = read_table(res / "pairs.parquet").to_pandas()
    assert len(pairs) > 0 and (pairs["clean_ids"].map(len) == pairs["corrupt_ids"].map(len)).all()
    patching = read_table(res / "patching.parquet").to_pandas()
    assert set(patching["method"]) == {"exact", "attribution"}
    exact = patching[patching["method"] == "exact"]
    assert (exact["positions"] != "all").any() and exact.loc[exact["positions"] != "all", "pos"].notna().all()
    assert patching.loc[patching["positions"] == "all", "pos"].isna().all()  # no sentinel: null and labelled
    assert set(patching["selection"]) == {"all_heads", "screen_top_k"}  # tiny config: some pairs screened only
    assert (patching.loc[patching["method"] == "attribution", "selection"] == "all_heads").all()
    by_pair = pairs.set_index("pair_id")["subtask"]
    assert (patching["subtask"] == patching["pair_id"].map(by_pair)).all()  # no join needed
    full = exact[(exact["selection"] == "all_heads") & (exact["positions"] == "all")].groupby("pair_id").size()
    assert full.nunique() == 1  # a full sweep has a row for every head
    assert patching["screen"].str.fullmatch(r"eap-ig:\d+|atp").all()
    for fig in (
        "patch_heads",
        "patch_positions",
        "attribution",
        "sufficiency",
        "rift",
        "answer_heads",
        "probe",
        "pathways",
    ):
        assert (res / "figures" / f"{fig}.png").stat().st_size > 1000
        assert (res / "figures" / f"{fig}.json").is_file()
    # every job's log ends with its time and memory (what bench_stages reads; no benchmark: files)
    job_logs = sorted((wd / "results" / "default" / "logs").rglob("*.log"))
    assert {p.parent.name for p in job_logs} >= {"models_tiny", "circuits_patch", "circuits_figure"}
    for log in job_logs:
        jt = job_time(log)
        assert jt is not None and jt.finished and jt.wall_s > 0 and jt.max_rss_mb > 50, log
    assert not (wd / "results" / "default" / "benchmarks").exists()
    # the report leads with findings: a summary row per tested claim, its verdict one of four
    out = cotlens(wd, "report")
    assert "report: results/default/report.html" in out
    page = (wd / "results" / "default" / "report.html").read_text(errors="ignore")
    assert "Findings of run" in page and "lens_heatmap" in page
    first = (wd / "results" / "default" / "report.html").read_bytes()
    cotlens(wd, "report")  # the same run reported again: the same bytes (the rule graph's order is fixed)
    assert (wd / "results" / "default" / "report.html").read_bytes() == first
    summary = read_table(wd / "results" / "default" / "summary.parquet").to_pandas()
    assert {"rift", "answer_heads", "sufficiency", "pathways", "digit_confidence", "digit_conditioning"} <= set(
        summary["figure"]
    )
    assert set(summary["verdict"]) <= set(VERDICTS)
    # one statement per tested figure: the title it drew, its JSON headline and its summary row
    for r in summary.itertuples():
        data = json.loads((wd / "results" / "default" / r.study / r.model / "figures" / f"{r.figure}.json").read_text())
        h = Headline.from_json(data["headline"])
        assert h.title(r.model) in data["drawn_titles"][0] or any(h.title(r.model) in t for t in data["drawn_titles"])
        assert (r.value, r.ci95, r.n, r.verdict, r.reason) == (h.value, h.ci_text(), h.n, h.verdict, h.reason)
        assert h.verdict in h.title(r.model) and (not h.ci95 or h.ci_text() in h.title(r.model))
    # the tiny model answers PrOntoQA at chance: Study 1's claims are not testable on it
    circ = summary[summary["study"] == "circuits"]
    assert (circ["verdict"] == "not testable on this model").all() and circ["gates"].str.contains(
        "answer accuracy"
    ).all()
    tables = (res / "figures" / "patch_heads.html").read_text()
    assert "top_heads_table" in tables and any(f"<td>{s}</td>" in tables for s in ("decision", "copy", "induction"))
    # a partial run still gets a report, of what exists, saying what is missing
    gone = wd / "results" / "default" / "digits" / "tiny" / "figures" / "digit_accuracy"
    for ext in (".png", ".pdf", ".json", ".html"):
        gone.with_suffix(ext).unlink()
    out = cotlens(wd, "report")
    assert "partial: 1 figure(s) not made yet" in out
    assert "digit_accuracy.json" in (wd / "results" / "default" / "report" / "summary.rst").read_text()
    smk(wd)
    assert scheduled(wd) == set()

    # Touching a module without changing it reruns nothing.
    os.utime(wd / "src" / "cotlens" / "circuits" / "figures.py")
    assert scheduled(wd) == set()
    # Editing a library module reruns exactly the rules whose scripts import it; the rerun
    # runs them, and then nothing is stale.
    edit(wd / "src" / "cotlens" / "digits" / "figures.py")
    assert scheduled(wd) == {"digits_figure"}
    edit(wd / "src" / "cotlens" / "digits" / "methods.py")
    assert scheduled(wd) == {"digits_confidence", "digits_figure"}
    smk(wd)
    assert scheduled(wd) == set()
    # Every other edit: the plan is asserted, then the content restored (same checksum:
    # nothing to rerun), which keeps the test inside CI's budget. Each plan is compared
    # with ==, so a module whose restoring did not take would fail the next one.
    every_model_stage = {"models_check", "digits_confidence", "digits_figure", *CIRCUIT_RULES}
    for module, expect in (
        ("circuits/figures.py", {"circuits_figure"}),
        ("circuits/lens.py", {"circuits_lens", "circuits_figure"}),
        ("circuits/patching.py", {"circuits_patch", "circuits_sufficiency", "circuits_figure"}),
        # #31: the findings page is read by the report alone; a study's claims rerun its figures
        # only; the figure tables (#19) rerun every figure, the probe its stage
        ("pipeline/summary.py", set()),
        ("digits/findings.py", {"digits_figure"}),
        ("circuits/findings.py", {"circuits_figure"}),
        ("pipeline/draw.py", {"circuits_figure", "digits_figure"}),
        ("core/verdicts.py", {"circuits_figure", "digits_figure"}),  # #27: the verdict rules rerun figures only
        ("circuits/probe.py", {"circuits_probe", "circuits_figure"}),
        ("core/hooks.py", every_model_stage),  # the self-checks use hooks: they rerun, and every stage they gate
        ("core/contributions.py", every_model_stage),
        # the prompts, and the tiny model's tokenizer (trained on PrOntoQA prompts)
        ("circuits/prompts.py", {"circuits_prompts", "models_tiny", *every_model_stage}),
        ("models/loading.py", every_model_stage),
        ("pipeline/stage.py", {"circuits_prompts", "digits_prompts", "models_tiny", *every_model_stage}),
    ):
        path = wd / "src" / "cotlens" / module
        before = path.read_text()
        edit(path)
        assert scheduled(wd) == expect, module
        path.write_text(before)  # restored: a module left stale would show in the next plan (==)
    assert scheduled(wd) == set()  # every restored module: nothing to rerun
    # the resume layer: only the sharded stages (and what reads them); restoring it reruns nothing
    shards = wd / "src" / "cotlens" / "io" / "shards.py"
    original = shards.read_text()
    edit(shards)
    assert scheduled(wd) == CIRCUIT_RULES - {"circuits_probe"}
    shards.write_text(original)
    assert scheduled(wd) == set()

    # Changing a config value reruns only the rules that read it, and what is downstream.
    edit_config(wd, "figures.dpi", 50)
    assert scheduled(wd) == {"digits_figure", "circuits_figure"}
    edit_config(wd, "figures.dpi", 40)
    assert scheduled(wd) == set()
    edit_config(wd, "circuits.lens.batch_rows", 32)
    assert scheduled(wd) == {"circuits_lens", "circuits_figure"}
    edit_config(wd, "circuits.lens.batch_rows", 64)
    edit_config(wd, "digits.confidence.batch_size", 2)
    assert scheduled(wd) == {"digits_confidence", "digits_figure"}
    edit_config(wd, "digits.confidence.batch_size", 4)
    edit_config(wd, "circuits.probe.l2", 0.5)
    assert scheduled(wd) == {"circuits_probe", "circuits_figure"}
    edit_config(wd, "circuits.prompts.hops", [1, 2, 3])
    assert scheduled(wd) == {"circuits_prompts", *CIRCUIT_RULES}


@pytest.mark.parametrize(
    "section, key, value, expect",
    [
        (None, "colour", "red", r"colour"),
        ("circuits.sample", "batch_size", "eight", r"batch_size|eight"),
        ("circuits.prompts", "hops", [1, 9], r"hops|9"),
        ("circuits.prompts", "mystery", 1, r"mystery"),
        ("neurons.effects", "modes", ["blur"], r"blur"),
        (None, "active_models", ["llama-9"], r"unknown model 'llama-9'"),
        ("experts", "judge", "nope", r"experts.judge is 'nope', which is not a model of the registry"),
        (None, "active_models", ["m" * 300], r"'m{300}' is too long"),
        (None, "run", "../elsewhere", r"run '../elsewhere' \(.*\) contains '/': a name is one path component"),
    ],
)
def test_invalid_config_fails_at_start_naming_the_key(
    workflow_copy: Path, section: str | None, key: str, value: object, expect: str
) -> None:
    wd = workflow_copy
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    node = cfg
    for part in section.split(".") if section else []:
        node = node[part]
    node[key] = value
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = smk(wd, "-n", check=False)
    assert res.returncode != 0
    assert re.search(expect, res.stdout + res.stderr), res.stderr[-2000:]
    assert not (wd / "results").exists() or not any((wd / "results").iterdir())


def test_settings_checked_against_the_model_and_files_before_any_job(workflow_copy: Path) -> None:
    wd = workflow_copy
    edit_config(wd, "studies", ["experts"])
    edit_config(wd, "experts.effects.k", [1, 64])
    res = smk(wd, "-n", check=False)
    assert (
        "experts.effects.k asks for 64 experts, but tiny-moe routes to 8 (layers x experts)" in res.stdout + res.stderr
    )
    edit_config(wd, "experts.effects.k", [1])
    edit_config(wd, "studies", ["neurons"])
    edit_config(wd, "neurons.prompts.gsm8k_path", "gsm8k/none.jsonl")
    res = smk(wd, "-n", check=False)
    assert "neurons.prompts.gsm8k_path is 'gsm8k/none.jsonl', which is not a file" in res.stdout + res.stderr
    assert not (wd / "results").exists()


def test_malformed_yaml(workflow_copy: Path) -> None:
    (workflow_copy / "config.yaml").write_text("circuits: [unclosed\n")
    res = smk(workflow_copy, "-n", check=False)
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "config file config.yaml is not valid YAML at line 2" in out


def test_neurons_branch_is_wired_and_a_model_with_no_correct_answer_is_one_clear_error(workflow_copy: Path) -> None:
    wd = workflow_copy
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["studies"] = ["neurons"]
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert scheduled(wd) == {
        "models_tiny",
        "models_check",
        "neurons_prompts",
        "neurons_discovery",
        "neurons_effects",
        "neurons_figure",
    }
    smk(wd, "results/default/neurons/prompts.parquet")
    prompts = read_table(wd / "results" / "default" / "neurons" / "prompts.parquet").to_pandas()
    n = cfg["neurons"]["prompts"]["n_problems"]
    assert len(prompts) == 7 * n and prompts["prompt"].str.endswith("Answer:").all()
    # the tiny random model answers nothing: discovery stops with one message and writes nothing
    res = smk(wd, "results/default/neurons/tiny/neurons.parquet", check=False)
    assert res.returncode != 0
    log = (wd / "results" / "default" / "logs" / "neurons_discovery" / "tiny.log").read_text()
    assert f"answered none of {(n + 1) // 2} problems correctly" in log  # the discovery half (even ids)
    assert not (wd / "results" / "default" / "neurons" / "tiny" / "neurons.parquet").exists()


EXPERT_RULES = {
    "experts_prompts",
    "models_train",
    "models_check",
    "experts_routes",
    "experts_ftri",
    "experts_effects",
    "experts_figure",
}


def test_experts_branch_end_to_end_and_exact_staleness(workflow_copy: Path) -> None:
    wd = workflow_copy
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["studies"] = ["experts"]
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert scheduled(wd) == EXPERT_RULES  # no models_prepare: the MoE is trained here
    smk(wd)
    res = wd / "results" / "default" / "experts" / "tiny-moe"
    man = json.loads((wd / "resources" / "models" / "tiny-moe" / "manifest.json").read_text())
    assert man["source"] == "train" and man["model_type"] == "olmoe" and len(man["sha256"]) == 64
    routes = read_table(res / "routes.parquet").to_pandas()
    assert set(routes["layer"]) == {0, 1} and (routes["experts"].map(len) == 2).all()
    assert set(routes["phase"]) == {"prompt", "generated"}
    assert read_meta(res / "routes.parquet")["extra"] == {"n_layers": 2, "n_experts": 4}
    ftri = read_table(res / "ftri.parquet").to_pandas()
    assert set(ftri["contrast"]) == {"all", "events", "instructions"} and len(ftri) == 3 * 2 * 4
    runs = read_table(res / "effects.parquet").to_pandas()
    assert {(c, m) for c, m in zip(runs["condition"], runs["mode"], strict=True)} == {
        ("baseline", "none"),
        ("top", "off"),
        ("top", "on"),
        ("random", "off"),
        ("random", "on"),
    }
    assert set(runs[runs["condition"] == "random"]["seed"]) == {0, 1}
    prompts = read_table(wd / "results" / "default" / "experts" / "prompts.parquet").to_pandas().set_index("prompt_id")
    study = runs[runs["set"] == "study"]
    assert set(prompts.loc[study["prompt_id"], "split"]) == {"eval"}  # the switches never see the map prompts
    assert runs[runs["set"] != "reference"]["fluency_nll"].notna().any()
    sw = json.loads((res / "figures" / "expert_switch.json").read_text())
    assert {v["random_sets"] for v in sw["verdicts"].values()} == {2}
    # 2 random sets cannot give a p below 0.33: the claim is not testable, whatever the effect
    assert sw["headline"]["verdict"] == "not testable on this model"
    assert "2 random k-sets (0 collapsed; needs 99)" in sw["headline"]["reason"] or sw["headline"]["reason"].startswith(
        "baseline refusal"
    )
    for fig in ("expert_map", "expert_switch", "expert_quality"):
        assert (res / "figures" / f"{fig}.png").stat().st_size > 1000
        assert (res / "figures" / f"{fig}.json").is_file()
    assert scheduled(wd) == set()
    # each edit's rerun set, then the module restored (same checksum: nothing to rerun; the
    # DAG test reruns an edit for real)
    downstream = {"experts_routes", "experts_ftri", "experts_effects", "experts_figure"}
    for module, expect in (
        ("figures.py", {"experts_figure"}),
        ("stages/ftri.py", {"experts_ftri", "experts_effects", "experts_figure"}),
        ("responses.py", downstream),
        ("methods.py", downstream),
    ):
        path = wd / "src" / "cotlens" / "experts" / module
        before = path.read_text()
        edit(path)
        assert scheduled(wd) == expect, module
        path.write_text(before)
    assert scheduled(wd) == set()
    edit_config(wd, "experts.effects.k", [1])
    assert scheduled(wd) == {"experts_effects", "experts_figure"}
    edit(wd / "src" / "cotlens" / "experts" / "prompts.py")  # the training corpus: the model is retrained
    assert scheduled(wd) == EXPERT_RULES


def test_config_and_model_together_run_what_both_ask_for(workflow_copy: Path, tiny_model_src: Path) -> None:
    """`cotlens run --config X --model DIR`: Snakemake kept only the last --configfile, so X
    was dropped (a user who asked for one study got all of them). Both now hold."""
    wd = workflow_copy
    (wd / "two.yaml").write_text("studies: [digits]\n")
    out = cotlens(wd, "run", "--config", "two.yaml", "--model", str(tiny_model_src), "-n")
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert set(jobs) == {
        "models_prepare",
        "models_check",
        "digits_prompts",
        "digits_confidence",
        "digits_figure",
        "all",
        "total",
    }, out[-3000:]
    assert "results/src/digits/src/figures/digit_confidence.png" in out  # the model's own run
