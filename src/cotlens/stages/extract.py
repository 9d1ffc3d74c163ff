"""Stage ``extract``: activations to a directory of Parquet shards, resumable.

Shards are written into ``<out>.partial/`` one file at a time (each atomically), keyed
by a hash of the config and of the upstream samples and model manifest. A rerun after a
crash reuses finished shards whose key matches; when all shards exist the directory is
renamed to ``<out>`` in one step, so a complete-looking output is always complete.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cotlens.extract import ExtractConfig, SampleRow, activation_schema, extract_batch
from cotlens.models.loading import load, read_manifest
from cotlens.parquet import ShardWriter, read_meta, read_table
from cotlens.stages.common import file_digest, model_meta, set_threads


def extract_config(cfg: Mapping[str, Any]) -> ExtractConfig:
    c = dict(cfg)
    c["positions"] = tuple(c.get("positions", ExtractConfig.positions))
    return ExtractConfig(**c)


def run(
    samples: str | Path, model_dir: str | Path, out: str | Path, cfg: Mapping[str, Any],
    runtime: Mapping[str, Any], threads: int = 1,
) -> int:  # fmt: skip
    ec = extract_config(cfg)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    key = file_digest(samples, Path(model_dir) / "manifest.json")
    meta_manifest = read_manifest(model_dir)
    rows = [
        SampleRow(
            r["prompt_id"],
            r["sample_idx"],
            r["prompt_token_ids"],
            r["prompt_nofacts_token_ids"],
            r["token_ids"],
            r["step_end_token"],
            r["answer_token"],
        )  # fmt: skip
        for r in read_table(samples).to_pylist()
    ]
    rows.sort(key=lambda r: (r.prompt_id, r.sample_idx))
    shards = [rows[i : i + ec.shard_size] for i in range(0, len(rows), ec.shard_size)] or [[]]
    meta = model_meta("extract", {**dict(cfg), "_upstream": key}, meta_manifest, runtime["dtype"])
    lm = None
    for k, shard in enumerate(shards):
        f = partial / f"part-{k:05d}.parquet"
        if f.exists() and read_meta(f).get("config_hash") == meta.config_hash:
            continue  # finished by an earlier, interrupted run
        if lm is None:
            set_threads(threads)
            lm = load(model_dir, runtime["dtype"], runtime["device"], runtime.get("attn", "sdpa"))
            schema = activation_schema(lm, ec)
        w = ShardWriter(f, schema, meta)
        try:
            for b in range(0, len(shard), ec.batch_size):
                w.write(extract_batch(lm, shard[b : b + ec.batch_size], ec, schema))
        except BaseException as e:
            w.abort(e)
            raise
        w.close()
    for stale in sorted(partial.glob("part-*.parquet"))[len(shards) :]:
        stale.unlink()
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return len(rows)
