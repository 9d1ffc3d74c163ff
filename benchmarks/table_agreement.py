"""How closely every table of one run agrees with the same table of another (a speed-up's
before and after): per Parquet file under ``results/<run>/``, identical data or, column by
column, the largest absolute difference (numbers, vectors) or the count of rows that
differ (text, labels). Schema metadata (timings, hashes, versions) is not compared. A
shard directory (``activations/``) is one table; tables that differ are compared again
with their rows sorted by their integer and string columns.

    python benchmarks/table_agreement.py BASE_RESULTS AFTER_RESULTS
    (e.g. /tmp/base/results/default results/default)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def column_difference(a: pa.ChunkedArray, b: pa.ChunkedArray) -> str:
    if a.equals(b):
        return "same"
    t = a.type
    if pa.types.is_floating(t) or pa.types.is_integer(t):
        x = a.to_numpy(zero_copy_only=False).astype(float)
        y = b.to_numpy(zero_copy_only=False).astype(float)
        both = ~(np.isnan(x) | np.isnan(y))
        nan_mismatch = int((np.isnan(x) != np.isnan(y)).sum())
        d = float(np.max(np.abs(x[both] - y[both]))) if both.any() else 0.0
        return f"max |diff| {d:.2g}" + (f", {nan_mismatch} nulls moved" if nan_mismatch else "")
    if pa.types.is_fixed_size_binary(t):  # cotlens vectors: float32 bytes (parquet.vectors_to_arrow)
        x = np.frombuffer(b"".join(a.to_pylist()), dtype=np.float32).astype(float)
        y = np.frombuffer(b"".join(b.to_pylist()), dtype=np.float32).astype(float)
        scale = float(np.max(np.abs(x))) or 1.0
        d = float(np.max(np.abs(x - y)))
        return f"max |diff| {d:.2g} (largest value {scale:.3g})"
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        try:
            fa, fb = a.combine_chunks(), b.combine_chunks()
            while hasattr(fa, "flatten") and not pa.types.is_floating(fa.type):
                fa, fb = fa.flatten(), fb.flatten()
            x = np.asarray(fa.to_numpy(zero_copy_only=False), dtype=float)
            y = np.asarray(fb.to_numpy(zero_copy_only=False), dtype=float)
            if x.shape == y.shape:
                return f"max |diff| {float(np.max(np.abs(x - y))) if x.size else 0.0:.2g}"
        except (pa.ArrowInvalid, ValueError, TypeError):
            pass
    xs, ys = a.to_pylist(), b.to_pylist()
    return f"{sum(p != q for p, q in zip(xs, ys, strict=True))} of {len(xs)} rows differ"


def in_key_order(t: pa.Table) -> pa.Table:
    """``t`` sorted by its integer and string columns (a table written in another order,
    e.g. shards cut another way)."""
    keys = [f.name for f in t.schema if pa.types.is_integer(f.type) or pa.types.is_string(f.type)]
    return t.sort_by([(k, "ascending") for k in keys]) if keys else t


def outputs(root: Path) -> dict[Path, pa.Table]:
    """Every table under ``root``: a Parquet file, or a shard directory read as one table."""
    out: dict[Path, pa.Table] = {}
    for f in sorted(root.rglob("*.parquet")):
        if f.parent != root and (f.parent / "_index.json").is_file():  # a shard directory
            rel = f.parent.relative_to(root)
            if rel not in out:
                out[rel] = pq.read_table(f.parent)
        else:
            out[f.relative_to(root)] = pq.read_table(f)
    return {k: v.replace_schema_metadata(None) for k, v in out.items()}


def main() -> int:
    base, after = Path(sys.argv[1]), Path(sys.argv[2])
    same = 0
    theirs = outputs(after)
    for rel, a in outputs(base).items():
        if rel not in theirs:
            print(f"{rel}: missing after")
            continue
        b = theirs[rel]
        if a.equals(b):
            same += 1
            print(f"{rel}: same data")
            continue
        if a.schema.names != b.schema.names or a.num_rows != b.num_rows:
            print(f"{rel}: DIFFERENT shape ({a.num_rows} vs {b.num_rows} rows)")
            continue
        a, b = in_key_order(a), in_key_order(b)
        if a.equals(b):
            same += 1
            print(f"{rel}: same data, rows in another order")
            continue
        cols = {c: column_difference(a.column(c), b.column(c)) for c in a.schema.names}
        print(f"{rel}: " + "; ".join(f"{c} {v}" for c, v in cols.items() if v != "same"))
    print(f"{same} files with the same data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
