"""What a stage reads is what it claims to be: checked before the stage does any work.

:func:`check_inputs` runs in :func:`cotlens.pipeline.stage.from_snakemake` before every
stage. For each Parquet input (a file, or a directory of shards):

- **one model**: the ``fingerprint`` in its metadata equals the content fingerprint of
  the model the stage loads (``inputs["model"]``; a figure rule names it
  ``provenance``), and all inputs share one; a file made
  from other weights (a model replaced at the same path, a file copied in from another
  model) is one :class:`CotlensError` naming both, never a silent mix;
- **shape**: a table named in :func:`cotlens.io.schemas.tables` has exactly its schema's
  columns and types, and its key columns identify each row once (a hand-edited file with
  every id twice stops here, not at a figure);
- **complete**: a shard directory holds exactly the shards its ``_index.json`` lists,
  with the rows and bytes it lists (one deleted or truncated shard stops the reader);
- **this configuration**: a table written in a Snakemake job records the run, the rule
  and the rule's ``params.cfg`` (``made_with``, :func:`cotlens.io.parquet.made_with`); the
  reader recomputes that part of the *current* config (:mod:`cotlens.pipeline.stageparams`) and
  refuses a table made with another one: copied in from another run, or left by an older
  configuration. It names both and the keys that differ.

Torch-free: it reads Parquet footers and key columns only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cotlens import paths
from cotlens.errors import CotlensError
from cotlens.io.fingerprint import of_manifest
from cotlens.io.parquet import read_meta
from cotlens.io.schemas import tables

INDEX = "_index.json"
# the model a stage loads ("model"), or only checks its tables against ("provenance":
# the figure rules); neither is a table
MODEL_INPUTS = ("model", "provenance", "judge", "checks")


def shard_files(directory: str | os.PathLike[str]) -> list[Path]:
    """The Parquet shards of a directory output (hidden and ``_`` files are not data)."""
    return sorted(p for p in Path(directory).glob("*.parquet") if not p.name.startswith((".", "_")))


def write_index(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Record the shards of a finished directory output: name, rows and bytes of each."""
    from cotlens.io.atomic import write_text

    shards = {p.name: {"rows": pq.read_metadata(p).num_rows, "bytes": p.stat().st_size} for p in shard_files(directory)}
    index = {"shards": shards}
    write_text(Path(directory) / INDEX, json.dumps(index, indent=1, sort_keys=True))
    return index


def check_index(directory: str | os.PathLike[str], fix: str) -> list[Path]:
    """The shards of ``directory``, checked against its index (see the module doc)."""
    d = Path(directory)
    f = d / INDEX
    if not f.is_file():
        raise CotlensError(f"{d} has no {INDEX}: it is not a finished shard directory", fix)
    try:
        listed: Any = json.loads(f.read_text())["shards"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        listed = None
    if not isinstance(listed, dict) or not all(
        isinstance(v, dict) and {"rows", "bytes"} <= set(v) for v in listed.values()
    ):
        raise CotlensError(f"{f} is not a complete shard index (truncated or edited?)", fix)
    found = {p.name: p for p in shard_files(d)}
    missing = sorted(set(listed) - set(found))
    extra = sorted(set(found) - set(listed))
    if missing or extra:
        raise CotlensError(
            f"{d} does not hold the shards it was written with: "
            + "; ".join(
                s for s in (f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else "") if s
            ),
            fix,
        )
    for name, p in found.items():
        rows, size = pq.read_metadata(p).num_rows, p.stat().st_size
        if (rows, size) != (listed[name]["rows"], listed[name]["bytes"]):
            raise CotlensError(
                f"{p} has {rows} rows in {size} bytes, but was written with "
                f"{listed[name]['rows']} rows in {listed[name]['bytes']} bytes",
                fix,
            )
    return list(found.values())


def table_key(path: str | os.PathLike[str]) -> str:
    """``<study>/<stem>`` of a table path (``cotlens.paths.table_key``)."""
    from cotlens.studies import STUDIES

    return paths.table_key(path, frozenset(STUDIES))


def check_table(path: str | os.PathLike[str], fix: str) -> None:
    """Schema and unique keys of a table named in :func:`cotlens.io.schemas.tables`."""
    key = table_key(path)
    known = tables()
    if key not in known:
        return
    schema, keys = known[key]
    got = pq.read_schema(path).remove_metadata()
    if not got.equals(schema):
        want = {f.name: str(f.type) for f in schema}
        have = {f.name: str(f.type) for f in got}
        diff = sorted(set(want.items()) ^ set(have.items()))
        raise CotlensError(f"{path} does not have the schema of {key} (differs in {diff[:6]})", fix)
    t = pq.read_table(path, columns=list(keys))
    unique = t.group_by(list(keys)).aggregate([]).num_rows
    if unique != t.num_rows:
        raise CotlensError(
            f"{path} has {t.num_rows - unique} duplicate rows: its key {list(keys)} must identify each row once",
            fix,
        )


def _first_meta(files: list[Path]) -> dict[str, Any] | None:
    """The metadata of the first readable file (which stage made a shard directory)."""
    for f in files:
        try:
            return read_meta(f)
        except Exception:  # noqa: S112 (a broken shard is reported by the index check)
            continue
    return None


def _remake(path: Path, meta: Mapping[str, Any] | None) -> str:
    rule = (meta or {}).get("stage")
    how = f"snakemake --forcerun {rule}" if rule else "delete it and rerun"
    return f"remake it from the current inputs ({how}); do not copy results between models or runs"


Current = Callable[[str], tuple[str, Any] | None]


def _flat(x: Any, at: str = "") -> dict[str, Any]:
    if isinstance(x, Mapping):
        out: dict[str, Any] = {}
        for k, v in x.items():
            out.update(_flat(v, f"{at}.{k}" if at else str(k)))
        return out
    return {at: x}


def config_differences(then: Any, now: Any, limit: int = 4) -> str:
    """``key: then -> now`` for the first ``limit`` dotted keys that differ."""
    a, b = _flat(json.loads(json.dumps(then, default=str))), _flat(json.loads(json.dumps(now, default=str)))
    keys = sorted(k for k in set(a) | set(b) if a.get(k, "(absent)") != b.get(k, "(absent)"))
    shown = [f"{k or '(all)'}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}" for k in keys[:limit]]
    return "; ".join(shown) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


def check_made_with(f: Path, meta: Mapping[str, Any], current: Current, run: str) -> None:
    """The table ``f`` was made with the current config's part for its rule (module doc)."""
    made = meta.get("made_with")
    if not isinstance(made, Mapping):
        return  # written outside a Snakemake job (the library API, a test): nothing recorded
    now = current(str(made.get("rule")))
    if now is None or now[0] == made.get("params_hash"):
        return
    where = f"run {made.get('run')!r}" + ("" if made.get("run") == run else f", not this run {run!r}")
    raise CotlensError(
        f"{f} was made by {made.get('rule')} of {where}, with a config that differs from the current one "
        f"({config_differences(made.get('params'), now[1])}): copied in from another run, or left by an "
        "older configuration",
        f"remove it and rerun (snakemake --forcerun {made.get('rule')}); to compare runs, give each its own "
        "`run:` and use compare.runs",
    )


def check_inputs(inputs: Mapping[str, str], current: Current | None = None, run: str = "") -> None:
    """Check every Parquet input of a stage (see the module doc). ``current(rule)`` is
    (hash, part) of the current config for a table-writing rule, None for others."""
    model_fp = None
    model_dir = inputs.get("model") or inputs.get("provenance")
    if model_dir and (Path(model_dir) / "manifest.json").is_file():
        model_fp = of_manifest(json.loads((Path(model_dir) / "manifest.json").read_text()))
    first: tuple[str, Path] | None = None
    for name, value in inputs.items():
        path = Path(value)
        if name in MODEL_INPUTS or not path.exists():
            continue
        if path.is_dir():
            shards = shard_files(path)
            files = check_index(path, _remake(path, _first_meta(shards))) if shards else []
        elif path.suffix == ".parquet":
            files = [path]
        else:
            continue
        for f in files:
            meta = read_meta(f)
            if path.is_file():
                check_table(f, _remake(f, meta))
            if current is not None:
                check_made_with(f, meta, current, run)
            fp = meta.get("fingerprint")
            if not fp:
                continue
            if model_fp is not None and fp != model_fp:
                raise CotlensError(
                    f"{f} was made from model {meta.get('model')!r} with content {fp[:19]}, but {model_dir} "
                    f"is {model_fp[:19]} now: the stage would mix two models",
                    _remake(f, meta),
                )
            if first is None:
                first = (fp, f)
            elif fp != first[0]:
                raise CotlensError(
                    f"{f} ({fp[:19]}) and {first[1]} ({first[0][:19]}) were made from different models",
                    _remake(f, meta),
                )
