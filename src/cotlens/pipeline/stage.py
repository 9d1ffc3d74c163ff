"""The one stage contract, and what every stage shares.

Every stage module exposes ``run(inputs, outputs, params, runtime, threads)``:

- ``inputs`` / ``outputs``: {name: path}, the rule's named input and output files
  (``code``, the library files a rule depends on, is not passed);
- ``params``: the stage's config section, the only settings hashed into the Parquet
  metadata (``config_hash``): what changes the numbers;
- ``runtime``: how to run (dtype, device, attention implementation, device map, cache
  paths such as ``judge_cache``): settings that do not change what is measured;
- ``threads``: CPU threads for torch.

``from_snakemake`` turns a ``script:`` directive's ``snakemake`` object into that call,
so every script is the same three lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from cotlens.io.atomic import remove_orphans
from cotlens.io.fingerprint import of_manifest
from cotlens.io.logs import logged
from cotlens.io.parquet import RunMeta, config_hash, made_with, read_meta, to_table, write_table
from cotlens.io.provenance import check_inputs
from cotlens.pipeline.stageparams import PARAMS, stage_params

Paths = Mapping[str, str]
Params = Mapping[str, Any]


class Stage(Protocol):
    def __call__(self, inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> object: ...


def _path(value: Any) -> str | None:
    """A named input's path; a named input given as a list (an optional one) has 0 or 1."""
    if isinstance(value, str | os.PathLike):
        return str(value)
    items = list(value)
    if len(items) > 1:
        raise ValueError(f"a named input holds {len(items)} files; stages take one path per name")
    return str(items[0]) if items else None


def from_snakemake(run: Stage, smk: Any) -> None:
    """Call ``run`` with the rule's named files, ``params.cfg``, ``params.runtime`` and
    threads, logging into the rule's log."""
    inputs = {k: p for k, v in smk.input.items() if k != "code" and (p := _path(v)) is not None}
    outputs = {k: str(v) for k, v in smk.output.items()}
    params = dict(getattr(smk.params, "cfg", {}) or {})
    runtime = dict(getattr(smk.params, "runtime", {}) or {})
    job = " ".join([str(smk.rule), *(str(v) for v in smk.wildcards)])
    config = dict(getattr(smk, "config", {}) or {})

    def current(rule: str) -> tuple[str, Any] | None:
        if rule not in PARAMS:
            return None
        part = stage_params(rule, config)
        return config_hash(part), part

    with logged(smk.log[0], job), made_with(str(config.get("run", "")), str(smk.rule), params):
        for out in outputs.values():  # temp files a killed run left (none a live process owns)
            for orphan in remove_orphans(out):
                print(f"removed {orphan}, left by an interrupted run", flush=True)
        # one model, the right schemas, unique keys, complete shards, this configuration
        check_inputs(inputs, current, str(config.get("run", "")))
        run(inputs, outputs, params, runtime, int(smk.threads))


def model_meta(stage: str, cfg: Mapping[str, Any], manifest: Mapping[str, Any], dtype: str, **extra: Any) -> RunMeta:
    return RunMeta.of(
        stage,
        cfg,
        model=str(manifest.get("name")),
        revision=str(manifest.get("revision")),
        dtype=dtype,
        fingerprint=of_manifest(manifest),
        extra=extra,
    )


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


REFUSED = "refused"  # the metadata key (in ``extra``) of a table a stage refused to compute


def _refused_meta(inputs: Paths) -> dict[str, Any] | None:
    """The metadata of the first input table a stage refused, or None."""
    for value in inputs.values():
        p = Path(value)
        if p.suffix == ".parquet" and p.is_file():
            meta = read_meta(p)
            if (meta.get("extra") or {}).get(REFUSED):
                return meta
    return None


def refusal(inputs: Paths) -> str | None:
    """Why an input table was refused (its metadata says so), or None: a stage whose input
    was refused refuses too, and a figure drawn from it says so instead of a number."""
    meta = _refused_meta(inputs)
    return None if meta is None else str(meta["extra"][REFUSED])


def pass_on(
    stage: str, inputs: Paths, outputs: Paths, tables: Mapping[str, Sequence[pa.Field] | pa.Schema], cfg: Params
) -> bool:
    """For a stage with no model input: if an input was refused, write ``tables`` refused
    with the same reason and model provenance, print one line and return True."""
    src = _refused_meta(inputs)
    if src is None:
        return False
    why = str(src["extra"][REFUSED])
    keep = {k: src.get(k) for k in ("model", "revision", "dtype", "fingerprint")}
    meta = RunMeta.of(stage, cfg, **keep, extra={REFUSED: why})
    for name, schema in tables.items():
        write_table(to_table({f.name: [] for f in schema}, schema), outputs[name], meta)
    print(f"{stage}: refused on {src.get('model')!r}: {why}", flush=True)
    return True


def refuse(
    stage: str,
    reason: str,
    outputs: Paths,
    tables: Mapping[str, Sequence[pa.Field] | pa.Schema],
    cfg: Params,
    model_dir: str,
    runtime: Params,
) -> str:
    """Write each of ``tables`` ({output name: schema}) with no rows and ``reason`` in its
    metadata, before any model is loaded: the run's other studies go on, and the figures
    of this one say "not testable on this model" with the reason. Prints one line."""
    manifest = json.loads((Path(model_dir) / "manifest.json").read_text())
    meta = model_meta(stage, cfg, manifest, str(runtime.get("dtype", "float32")), **{REFUSED: reason})
    for name, schema in tables.items():
        write_table(to_table({f.name: [] for f in schema}, schema), outputs[name], meta)
    print(f"{stage}: refused on {manifest.get('name')!r}: {reason}", flush=True)
    return reason
