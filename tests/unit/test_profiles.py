"""The execution profiles and conda environments agree with the rules and the pins."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "workflow" / "rules"


def rule_blocks() -> dict[str, str]:
    """{rule name: its text}; the figure rule of figures.smk is defined once per study."""
    from cotlens.studies import STUDIES

    out = {}
    for f in RULES.glob("*.smk"):
        text = f.read_text()
        for block in re.split(r"^rule ", text, flags=re.M)[1:]:
            out[block.split(":", 1)[0]] = block
        if "\n    rule:\n" in text:  # a rule made in a loop over the studies
            block = text.split("\n    rule:\n", 1)[1]
            assert 'f"{_study.name}_figure"' in block, f
            out.update({f"{s}_figure": block for s in STUDIES})
    return out


def model_rules() -> set[str]:
    """Rules that load a model (an input named model=MODEL, resources/models/{model}, or a
    model stage's inputs through model_stage): they get a GPU and the CUDA env."""
    return {
        r
        for r, b in rule_blocks().items()
        if re.search(r"^\s+(model=MODEL|unpack\(model_stage\(\"[^\"]+\"\)\)),$", b, re.M)
    }


def pins(lines: list[str]) -> dict[str, str]:
    return dict(m.groups() for m in (re.match(r"^\s*(?:- )?([A-Za-z0-9_.-]+)==([^\s#]+)", x) for x in lines) if m)


def test_the_slurm_profile_gives_every_rule_resources_and_gpus_only_to_model_stages() -> None:
    prof = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    res = prof["set-resources"]
    assert set(res) == set(rule_blocks())  # a new rule must get cluster resources
    for rule, r in res.items():
        assert {"mem_mb", "runtime", "cpus_per_task"} <= set(r), rule
        assert ("gpu" in r) == (rule in model_rules()), rule
    assert model_rules() >= {
        "circuits_sample",
        "circuits_patch",
        "digits_confidence",
        "neurons_discovery",
        "experts_routes",
    }
    assert set(prof["set-threads"]) <= model_rules() | {"models_prepare", "models_train"}
    assert prof["default-resources"]["slurm_partition"] == "$COTLENS_SLURM_PARTITION"
    assert prof["default-resources"]["slurm_account"] == "$COTLENS_SLURM_ACCOUNT"
    assert prof["executor"] == "slurm" and prof["rerun-incomplete"] is True


def test_the_default_profile_runs_locally() -> None:
    prof = yaml.safe_load((ROOT / "workflow" / "profiles" / "default" / "config.yaml").read_text())
    assert "executor" not in prof and prof["cores"] >= 1 and prof["rerun-incomplete"] is True


def test_every_rule_has_a_conda_env_model_rules_the_cuda_one() -> None:
    for rule, block in rule_blocks().items():
        m = re.search(r'conda:\s*\n\s*"\.\./\.\./(envs/[\w.]+)"', block)
        assert m, f"rule {rule} has no conda: directive"
        assert (ROOT / m[1]).is_file(), m[1]
        want = "envs/cuda.yaml" if rule in model_rules() else "envs/cpu.yaml"
        assert m[1] == want, rule


def test_conda_envs_pin_what_requirements_pins() -> None:
    req = pins((ROOT / "requirements.txt").read_text().splitlines())
    for env in ("cpu.yaml", "cuda.yaml"):
        got = pins((ROOT / "envs" / env).read_text().splitlines())
        assert got["torch"] == req["torch"] == "2.13.0"
        shared = set(got) & set(req)
        assert len(shared) >= 6, env
        assert {k: got[k] for k in shared} == {k: req[k] for k in shared}, env


def test_the_local_profile_runs_two_model_stages_side_by_side() -> None:
    """make run: every model stage on one thread, so on the 2 cores two of them run at once
    (and fit the profile's memory together)."""
    prof = yaml.safe_load((ROOT / "workflow" / "profiles" / "default" / "config.yaml").read_text())
    heavy = model_rules() | {"models_train", "models_prepare"}  # prepare starts beside train
    two = {"models_tiny"}  # it builds the tiny test model on both cores, alone
    assert set(prof["set-threads"]) == heavy | two
    assert {r: prof["set-threads"][r] for r in heavy} == dict.fromkeys(heavy, 1)
    assert {r: prof["set-threads"][r] for r in two} == dict.fromkeys(two, 2)
    total = int(prof["resources"][0].split("=")[1])
    # threads and memory live in the profiles, not in the rules
    assert not [r for r, b in rule_blocks().items() if re.search(r"^\s+(threads|resources):", b, re.M)]

    def mem(rule: str) -> int:
        return int(prof["set-resources"][rule]["mem_mb"])

    # the conversion (16 GB for a 7B) starts beside models_train only; a self-check is a
    # model stage like the others (at 16 GB, the MoE's check waited behind every pair of
    # model stages and Study 4 ran alone at the end of make run)
    assert mem("models_prepare") + mem("models_train") <= total
    for rule in heavy - {"models_prepare"}:
        assert 2 * mem(rule) <= total, rule
