"""What every study's tables share: the vector column, and the registry of the tables a
stage reads back (each study declares its own in ``cotlens.<study>.tables``; documented in
docs/design.md, "Parquet schemas")."""

from __future__ import annotations

import importlib
import json
from functools import cache

import pyarrow as pa

from cotlens.studies import STUDIES

VECTOR_DTYPE = "float32"  # little-endian, as the bytes of a fixed_size_binary column


def vector_field(name: str, shape: tuple[int, ...], meaning: str) -> pa.Field:
    """A vector column: ``fixed_size_binary(4 * prod(shape))`` of little-endian float32,
    its dtype, shape and meaning in the field metadata (``cotlens.read_vectors`` reads
    them back into a ``[rows, *shape]`` array)."""
    size = 1
    for n in shape:
        size *= n
    return pa.field(
        name,
        pa.binary(4 * size),
        metadata={
            "dtype": VECTOR_DTYPE,
            "byte_order": "little",
            "shape": json.dumps(list(shape)),
            "description": meaning,
        },
    )


@cache
def tables() -> dict[str, tuple[pa.Schema, tuple[str, ...]]]:
    """Every table a stage reads back, by ``<study>/<file stem>``: its schema and the columns
    that identify a row (checked unique on read, ``cotlens.io.provenance``), gathered from
    each study's ``cotlens.<study>.tables.TABLES``. The activations directory's schema
    depends on the model; its shards are checked against their index."""
    out: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {}
    for study in STUDIES:
        own = importlib.import_module(f"cotlens.{study}.tables").TABLES
        wrong = [k for k in own if not k.startswith(f"{study}/")]
        if wrong:
            raise ValueError(f"cotlens.{study}.tables declares tables of another study: {wrong}")
        out.update(own)
    return out
