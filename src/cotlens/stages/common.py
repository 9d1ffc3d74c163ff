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

import os
from collections.abc import Mapping
from typing import Any, Protocol

from cotlens.atomic import remove_orphans
from cotlens.fingerprint import of_manifest
from cotlens.logs import logged
from cotlens.parquet import RunMeta
from cotlens.provenance import check_inputs

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
    with logged(smk.log[0], job):
        for out in outputs.values():  # temp files a killed run left (none a live process owns)
            for orphan in remove_orphans(out):
                print(f"removed {orphan}, left by an interrupted run", flush=True)
        check_inputs(inputs)  # one model, the right schemas, unique keys, complete shards
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
