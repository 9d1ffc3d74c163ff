"""A tiny DAG on a real SLURM cluster (slurm-wlm + munge on localhost) through the
repository's SLURM profile: every job goes through sbatch, and the outputs equal a
local run byte for byte. The smallest DAG that proves it: Study 3's branch (the model
built, checked, prompts, a model stage, its figures), 7 jobs; the whole tiny DAG ran
through SLURM before, about 4 minutes for nothing more."""

from __future__ import annotations

import collections
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from dag import differences, digests, smk
from slurm_cluster import missing_tools, slurm_cluster

from cotlens.studies import STUDIES

pytestmark = pytest.mark.acceptance

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"


def fitted_profile(prof: dict[str, Any], cpus: int, logdir: Path) -> dict[str, Any]:
    """The repository's SLURM profile, fitted to the one-node test cluster: its partition,
    no account, no GPUs, at most the node's CPUs, small memory, fast status checks."""
    p = dict(prof)
    p["default-resources"] = {"slurm_partition": "local", "mem_mb": 1000, "runtime": 30, "cpus_per_task": 1}
    p["set-resources"] = {
        rule: {"mem_mb": 1500, "runtime": r["runtime"], "cpus_per_task": min(cpus, r["cpus_per_task"])}
        for rule, r in prof["set-resources"].items()
    }  # the gpu entries are dropped: the test node has none
    p["set-threads"] = {rule: min(cpus, t) for rule, t in prof["set-threads"].items()}
    p.update(
        {
            "slurm-no-account": True,
            "slurm-status-command": "squeue",
            "slurm-logdir": str(logdir),
            "slurm-init-seconds-before-status-checks": 1,
            "seconds-between-status-checks": 2,
            "slurm-keep-successful-logs": True,
            "retries": 0,
            "keep-going": False,
            "jobs": 4,
        }
    )
    p.pop("slurm-requeue", None)
    return p


def test_tiny_dag_on_a_real_slurm_cluster_matches_the_local_run(
    accept_copy: Path, reference: dict[str, str], tmp_path: Path
) -> None:
    missing = missing_tools()
    if missing:
        pytest.fail(f"missing {missing}: install them with `apt-get install slurm-wlm munge` (.ci/run does, as root)")
    wd = accept_copy
    targets = [f"results/default/digits/tiny/figures/{f}.json" for f in STUDIES["digits"].figures]
    stats = smk(wd, *targets, "-n", "--quiet", "rules").split("Job stats:")[1].split("total")[0]
    planned = collections.Counter({m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", stats, re.M)})
    planned.pop("all", None)  # a localrule
    prof = fitted_profile(yaml.safe_load(PROFILE.read_text()), 2, tmp_path / "slurm-logs")
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(prof))
    with slurm_cluster(tmp_path / "cluster") as cluster:
        t0 = time.monotonic()
        smk(wd, "--profile", str(tmp_path / "profile"), *targets, env=cluster.env, timeout=1800)
        wall = time.monotonic() - t0
        jobs = cluster.jobs()
        submissions = cluster.submissions()
    ran = collections.Counter(re.match(r"rule_(\w+?)(_wildcards_.*)?$", j["comment"])[1] for j in jobs)  # type: ignore[index]
    print(f"SLURM run: {wall:.0f} s wall, {submissions} sbatch submissions, {len(jobs)} jobs: {dict(ran)}")
    assert planned and ran == planned  # every planned job, and only those, went through sbatch
    assert submissions == sum(planned.values())
    assert {j["state"] for j in jobs} == {"COMPLETED"}
    assert set(planned) == {"models_tiny", "models_check", "digits_prompts", "digits_confidence", "digits_figure"}
    made = digests(wd)
    assert len(made) >= 2 + 4 * len(targets) and all(k.startswith("default/digits/") for k in made)
    assert differences(made, {k: v for k, v in reference.items() if k.startswith("default/digits/")}) == []
