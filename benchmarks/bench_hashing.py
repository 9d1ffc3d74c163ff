"""What content hashing costs (cotlens.io.fingerprint), per GB of weights:

- at prepare and at every load of a `local` model: every file read and hashed (``fresh``);
- in a no-op dry run: the (size, mtime, inode, ctime) cache answers, one stat per file.

    python benchmarks/bench_hashing.py [--gb 1.0]

A file of random bytes is written in a temp directory; the first pass is timed after a
read (page cache warm), as a model used the minute before is."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from cotlens.io.fingerprint import dir_content


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        model = Path(d) / "model"
        model.mkdir()
        (model / "config.json").write_text("{}")
        n = int(args.gb * (1 << 30))
        with open(model / "model.safetensors", "wb") as fh:
            left = n
            while left:
                k = min(left, 1 << 26)
                fh.write(os.urandom(k))
                left -= k
        cache = Path(d) / "hashes.json"
        (model / "model.safetensors").read_bytes()  # page cache warm
        t = time.perf_counter()
        dir_content(model, cache, fresh=True)
        fresh = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(100):
            dir_content(model, cache)
        cached = (time.perf_counter() - t) / 100
    gb = n / (1 << 30)
    print(f"content hash at prepare / at load (fresh): {fresh / gb:.2f} s per GB ({gb / fresh:.2f} GB/s)")
    print(f"no-op dry run (cache hit, stat only):      {cached * 1e3:.2f} ms per model directory")


if __name__ == "__main__":
    main()
