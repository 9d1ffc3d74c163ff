"""The execution profiles and conda environments agree with the rules and the pins."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "workflow" / "rules"


def rule_blocks() -> dict[str, str]:
    out = {}
    for f in RULES.glob("*.smk"):
        for block in re.split(r"^rule ", f.read_text(), flags=re.M)[1:]:
            out[block.split(":", 1)[0]] = block
    return out


def model_rules() -> set[str]:
    """Rules that load a model (an input named resources/models/{model}): they get a GPU and the CUDA env."""
    return {r for r, b in rule_blocks().items() if 'model="resources/models/{model}"' in b}


def pins(lines: list[str]) -> dict[str, str]:
    return dict(m.groups() for m in (re.match(r"^\s*(?:- )?([A-Za-z0-9_.-]+)==([^\s#]+)", x) for x in lines) if m)


def test_the_slurm_profile_gives_every_rule_resources_and_gpus_only_to_model_stages() -> None:
    prof = yaml.safe_load((ROOT / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    res = prof["set-resources"]
    assert set(res) == set(rule_blocks())  # a new rule must get cluster resources
    for rule, r in res.items():
        assert {"mem_mb", "runtime", "cpus_per_task"} <= set(r), rule
        assert ("gpu" in r) == (rule in model_rules()), rule
    assert model_rules() >= {"sample", "extract", "patch", "digits", "neurons", "expert_routes"}
    assert set(prof["set-threads"]) <= model_rules() | {"prepare_model", "train_moe"}
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
