"""Parquet write / read-into-numpy throughput for one layer's vectors.

Targets on this machine: write >= 300 MB/s, read >= 600 MB/s. Compares our
fixed_size_binary layout (cotlens.io.parquet) with a default-settings FixedSizeList column.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _timing import median_time

from cotlens.circuits import tables
from cotlens.io.parquet import RunMeta, arrow_to_vectors, read_table, to_table, vectors_to_arrow, write_table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=576)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((a.rows, a.dim)).astype(np.float32)
    mb = x.nbytes / 1e6
    n = a.rows
    schema = tables.activations(a.dim, a.dim, None)
    ids = {f.name: np.zeros(n, dtype=np.int64) for f in schema if f.name not in ("pos_kind", "resid", "attn_heads")}
    tab = to_table(
        {**ids, "pos_kind": ["step_end"] * n, "resid": vectors_to_arrow(x), "attn_heads": vectors_to_arrow(x)}, schema
    )
    one_layer = tab.select(["prompt_id", "layer", "resid"])
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "ours.parquet"
        w = median_time(lambda: write_table(one_layer, f, RunMeta("bench", "x")), a.reps)
        r = median_time(lambda: arrow_to_vectors(read_table(f, columns=["resid"]).column("resid")), a.reps)
        assert np.array_equal(arrow_to_vectors(read_table(f, columns=["resid"]).column("resid")), x)
        g = Path(d) / "list.parquet"
        lst = pa.table({"resid": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), a.dim)})
        wl = median_time(lambda: pq.write_table(lst, g), a.reps)
        rl = median_time(
            lambda: pq.read_table(g).column("resid").combine_chunks().flatten().to_numpy().reshape(n, a.dim), a.reps
        )
    print(f"{a.rows} x {a.dim} float32 = {mb:.0f} MB")
    print(f"cotlens fixed_size_binary : write {mb / w:7.0f} MB/s   read->numpy {mb / r:7.0f} MB/s  (targets 300 / 600)")
    print(f"FixedSizeList, defaults   : write {mb / wl:7.0f} MB/s   read->numpy {mb / rl:7.0f} MB/s")


if __name__ == "__main__":
    main()
