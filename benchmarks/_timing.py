"""Shared helpers of the benchmark scripts: timing, and fresh-process memory runs."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def sync() -> None:
    """Wait for queued GPU work, so wall time covers it (no-op on CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def median_time(fn: Callable[[], object], reps: int, warmup: int = 0) -> float:
    """Median wall time of ``fn`` over ``reps`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def child_runs(script: str, model_dir: Path, sizes: list[int], tmp: Path) -> Iterator[dict]:  # type: ignore[type-arg]
    """Run ``script --child MODEL N WORK`` in a fresh process per size (so ru_maxrss is that
    run's peak) and yield the JSON each prints last."""
    for n in sizes:
        work = tmp / f"n{n}"
        work.mkdir()
        out = subprocess.run(
            [sys.executable, script, "--child", str(model_dir), str(n), str(work)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        yield json.loads(out.strip().splitlines()[-1])
