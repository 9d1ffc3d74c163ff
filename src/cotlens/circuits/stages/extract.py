"""Stage ``circuits_extract``: activations to a directory of Parquet shards, resumable.

Shards are written into ``<out>.partial/`` one file at a time (each atomically), keyed
by a hash of the config, the runtime and the upstream samples and model manifest
(``cotlens.io.shards``). A rerun after a crash reuses finished shards whose key matches;
when all shards exist the directory is renamed to ``<out>`` in one step, so a
complete-looking output is always complete.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cotlens.circuits.extract import ExtractConfig, SampleRow, activation_schema, extract_batch
from cotlens.io.logs import Progress
from cotlens.io.parquet import ShardWriter, read_table
from cotlens.io.shards import Shards
from cotlens.models.loading import load_for_stage, read_manifest
from cotlens.pipeline.resume import resume_key
from cotlens.pipeline.stage import Params, Paths, model_meta


def extract_config(params: Mapping[str, Any]) -> ExtractConfig:
    c = dict(params)
    c["positions"] = tuple(c["positions"])
    return ExtractConfig(**c)


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    samples, model_dir, out = inputs["samples"], inputs["model"], outputs["activations"]
    ec = extract_config(params)
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
        )
        for r in read_table(samples).to_pylist()
    ]
    rows.sort(key=lambda r: (r.prompt_id, r.sample_idx))
    work = [rows[i : i + ec.shard_size] for i in range(0, len(rows), ec.shard_size)] or [[]]
    meta = model_meta(
        "circuits_extract",
        resume_key(__name__, params, runtime, samples, Path(model_dir) / "manifest.json"),
        meta_manifest,
        runtime["dtype"],
    )
    shards = Shards(out, "circuits_extract", meta, len(work))
    lm = None
    todo = shards.todo()  # the rest: finished by an interrupted run
    prog = Progress(sum(-(-len(work[k]) // ec.batch_size) for k in todo), "batches")
    for k in todo:
        shard = work[k]
        if lm is None:
            lm = load_for_stage(model_dir, runtime, threads)
            schema = activation_schema(lm, ec)
        with ShardWriter(shards.path(k), schema, meta) as w:
            for b in range(0, len(shard), ec.batch_size):
                w.write(extract_batch(lm, shard[b : b + ec.batch_size], ec, schema))
                prog.update(note=f"shard {k + 1}/{len(work)}")
        shards.committed(k)
    prog.close()
    print(shards.summary(), flush=True)
    shards.promote(out)
    return len(rows)
