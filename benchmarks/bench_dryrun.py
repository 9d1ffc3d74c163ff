"""No-op `snakemake -n` time over the whole default DAG (target <= 3 s), and the cost of
a `local` model's content fingerprint (cotlens.io.fingerprint) in a dry run: cold (every
file hashed, MB/s) and warm (the (path, size, mtime) cache answers).

    python benchmarks/bench_dryrun.py [--local MODEL_DIR]

``--local`` adds MODEL_DIR as a `local` registry entry to the active models (e.g. the
default model's converted weights, resources/models/smollm2-135m/weights)."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def dry(*args: str, env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet", *args],
        check=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--local", help="a transformers model directory to fingerprint in the dry run")
    a = ap.parse_args()
    ts = [dry() for _ in range(3)]
    print(
        f"snakemake -n over the default DAG: median {statistics.median(ts):.2f} s (runs: {', '.join(f'{t:.2f}' for t in ts)})"
    )
    if not a.local:
        return
    from cotlens.io.fingerprint import content_files

    size = sum(p.stat().st_size for p in content_files(a.local))
    base = yaml.safe_load(Path("config.yaml").read_text())
    with tempfile.TemporaryDirectory() as d:
        overlay = Path(d) / "local.yaml"
        models = {**base["models"], "bench-local": {"source": "local", "path": str(Path(a.local).resolve())}}
        overlay.write_text(yaml.safe_dump({"models": models, "active_models": [*base["active_models"], "bench-local"]}))
        env = {"COTLENS_HASH_CACHE": str(Path(d) / "hashes.json")}
        cold = dry("--configfile", str(overlay), env=env)
        warm = [dry("--configfile", str(overlay), env=env) for _ in range(3)]
    print(
        f"with a local model of {size / 1e6:.0f} MB: first dry run {cold:.2f} s "
        f"(hashing ~{size / 1e6 / max(cold - statistics.median(ts), 1e-3):.0f} MB/s), "
        f"then median {statistics.median(warm):.2f} s (cached)"
    )


if __name__ == "__main__":
    main()
