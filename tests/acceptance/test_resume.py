"""kill -9 in the middle of the sample, extract and patch stages; the rerun resumes from
the finished shards and ends with the same bytes as an uninterrupted run."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from dag import differences, digests, smk, snakemake_cmd

from cotlens.io.shards import HOLD_ENV
from cotlens.pipeline import cli

pytestmark = pytest.mark.acceptance

RES = Path("results/default/circuits/tiny")
# stage, its shard directory, its final output, and how many shards it has in this config
KILLS = [
    ("circuits_sample", "samples.parquet.partial", "samples.parquet", 2),  # its activations/ beside, shard by shard
    ("circuits_patch", "patching.parquet.partial", "patching.parquet", 3),
]


def resume_args(wd: Path) -> list[str]:
    """What `cotlens run` forces to resume the outputs an interrupted run left missing."""
    here = Path.cwd()
    os.chdir(wd)
    try:
        return cli._resume_interrupted([])
    finally:
        os.chdir(here)


def run_until_held(wd: Path, stage: str, target: Path, marker: Path, *more: str, timeout: float = 600) -> None:
    """Start the DAG up to ``target``, wait until ``stage`` has committed its first shard,
    then SIGKILL Snakemake and everything it started (its whole session)."""
    env = {**os.environ, HOLD_ENV: f"{stage}:1:{marker}"}
    proc = subprocess.Popen(
        snakemake_cmd(wd, "--cores", "2", "--rerun-incomplete", *more, str(target)),
        cwd=wd,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"the run ended (rc {proc.returncode}) before {stage} held:\n{proc.stdout.read()[-4000:]}"
            )  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{stage} did not reach its first shard in {timeout} s")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def test_kill9_in_each_long_stage_resumes_to_identical_bytes(accept_copy: Path, reference: dict[str, str]) -> None:
    wd = accept_copy
    for stage, partial, final, _ in KILLS:
        run_until_held(wd, stage, RES / final, wd / f"held-{stage}")
        shards = sorted(p.name for p in (wd / RES / partial).glob("part-*.parquet"))
        assert shards == ["part-00000.parquet"], shards  # one finished shard, nothing else
        assert not (wd / RES / final).exists()  # nothing looks complete
        assert not list((wd / RES).glob(".tmp-*"))
        smk(wd, "--unlock")  # what a user does after a killed run
    out = smk(wd, "--cores", "2", "--rerun-incomplete")
    assert "Finished job" in out or "steps (100%) done" in out
    for stage, _, _, n in KILLS:
        log = (wd / "results" / "default" / "logs" / stage / "tiny.log").read_text()
        m = re.search(rf"{stage}: (\d+) shards, (\d+) reused from an interrupted run, (\d+) computed", log)
        assert m, log[-2000:]
        assert (int(m[1]), int(m[2]), int(m[3])) == (n, 1, n - 1)  # the killed run's shard was not redone
    for _, partial, _, _ in KILLS:
        assert not (wd / RES / partial).exists()
    assert not list((wd / "results").rglob(".tmp-*"))
    assert differences(digests(wd), reference) == []

    # A kill at a random moment of a full rerun (the prompts forced: every stage reruns):
    # the rerun removes whatever temp files the kill left and ends with the same bytes.
    moment = random.uniform(0.5, 25.0)
    print(f"killing the forced rerun after {moment:.1f} s")
    proc = subprocess.Popen(
        snakemake_cmd(wd, "--cores", "2", "--forcerun", "circuits_prompts", "digits_prompts"),
        cwd=wd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(moment)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    smk(wd, "--unlock")
    smk(wd, "--cores", "2", "--rerun-incomplete")
    # Snakemake alone remakes an interrupted job's output only when a target needs it: a
    # killed intermediate (activations/) whose readers are up to date stays absent, and it
    # says "Nothing to be done"; a temp its killed shard left stays in its .partial/ until
    # the stage runs again. `cotlens run` forces what an interrupted stage left missing
    # (cli._resume_interrupted); with it, every file is back, with the same bytes, and no
    # temp file is left anywhere.
    missing = resume_args(wd)
    partials = {(wd / m).with_name((wd / m).name + ".partial") for m in missing}
    stray = [p for p in (wd / "results").rglob(".tmp-*") if p.parent not in partials]
    assert stray == [] and not list((wd / "resources").rglob(".tmp-*")), (stray, missing)
    assert not [k for k in differences(digests(wd), reference) if "/figures/" in k]
    smk(wd, "--cores", "2", "--rerun-incomplete", *cli.with_forced([], missing))
    assert not list((wd / "results").rglob(".tmp-*")) and not list((wd / "results").rglob("*.partial"))
    assert differences(digests(wd), reference) == []

    # The case: kill -9 during a forced rerun of circuits_sample. Its outputs are
    # gone (Snakemake removed them before the job); lens, pairs and the figures made from
    # them are still there.
    run_until_held(wd, "circuits_sample", RES / "activations", wd / "held-forced", "-R", "circuits_sample")
    smk(wd, "--unlock")
    assert not (wd / RES / "activations").exists() and not (wd / RES / "samples.parquet").exists()
    assert "Nothing to be done" in smk(wd, "--cores", "2", "--rerun-incomplete", "-n")  # what Snakemake says
    assert resume_args(wd) == [str(RES / "activations"), str(RES / "samples.parquet")]
    smk(wd, "--cores", "2", "--rerun-incomplete", *cli.with_forced([], resume_args(wd)))
    log = (wd / "results" / "default" / "logs" / "circuits_sample" / "tiny.log").read_text()
    assert "circuits_sample: 2 shards, 1 reused from an interrupted run, 1 computed" in log
    assert not list((wd / "results").rglob(".tmp-*")) and not list((wd / "results").rglob("*.partial"))
    assert differences(digests(wd), reference) == []
    assert resume_args(wd) == []
