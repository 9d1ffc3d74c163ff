"""No-op `snakemake -n` time over the whole default DAG (target <= 3 s)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def main() -> None:
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--quiet"], check=True, capture_output=True
        )
        ts.append(time.perf_counter() - t)
    print(
        f"snakemake -n over the default DAG: median {statistics.median(ts):.2f} s (runs: {', '.join(f'{t:.2f}' for t in ts)})"
    )


if __name__ == "__main__":
    main()
