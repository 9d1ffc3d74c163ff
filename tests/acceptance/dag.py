"""Helpers of the acceptance tests: run the tiny-model DAG and fingerprint its outputs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

COMPARED = {".parquet", ".png", ".pdf", ".json", ".html"}


def snakemake_cmd(wd: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-d", str(wd), "-s", str(wd / "Snakefile"), *args]


def smk(wd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run Snakemake in ``wd``; its output, or an AssertionError with the tail of it."""
    res = subprocess.run(
        snakemake_cmd(wd, *args),
        cwd=wd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if res.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{res.stdout[-4000:]}\n{res.stderr[-6000:]}")
    return res.stdout + res.stderr


def digests(wd: Path) -> dict[str, str]:
    """sha256 of every Parquet file, figure and figure JSON under results/ (logs are
    excluded: their times differ from run to run by design)."""
    out = {}
    for p in sorted((wd / "results").rglob("*")):
        rel = p.relative_to(wd / "results")
        if p.is_file() and p.suffix in COMPARED and "logs" not in rel.parts:
            out[str(rel)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def differences(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Files present in only one of two runs, or with different bytes."""
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
