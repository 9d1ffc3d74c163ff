"""Resumable stage outputs: finished units of work kept as shards until the stage ends.

A long stage (``sample``, ``extract``, ``patch``) cuts its work into shards that each
depend only on their own inputs (a fixed slice of the work list, a seed derived from the
shard index). Each finished shard is written atomically into ``<out>.partial/`` with a
resume key in its metadata: a hash of the stage config, the runtime, the upstream
files, the stage's code closure and the library versions
(:func:`cotlens.pipeline.resume.resume_key`). A rerun after a crash (kill -9, a preempted SLURM job, a node out of memory)
keeps every shard whose key matches and computes only the rest, so the final output is
the same bytes as an uninterrupted run. The partial directory is not a Snakemake output:
Snakemake never deletes it, and only the stage turns it into the final output.

``COTLENS_TEST_HOLD=<stage>:<n>:<marker>`` makes the stage write ``<marker>`` and wait
once ``n`` shards of this run are committed, so a test can kill -9 it at a known point.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from cotlens.io.atomic import explain, remove_orphans
from cotlens.io.parquet import RunMeta, read_meta, read_table, write_table
from cotlens.io.provenance import write_index

HOLD_ENV = "COTLENS_TEST_HOLD"
HOLD_SECONDS = 600  # a hold that nobody kills ends, and the stage goes on


class Shards:
    """``n`` shards of one stage output, in ``<out>.partial/<prefix>-NNNNN.parquet``."""

    def __init__(self, out: str | os.PathLike[str], stage: str, meta: RunMeta, n: int, prefix: str = "part") -> None:
        out = Path(out)
        self.dir = out.with_name(out.name + ".partial")
        self.stage, self.meta, self.n, self.prefix = stage, meta, n, prefix
        self.reused = 0
        self.computed = 0
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise explain(e, self.dir) from e
        for k in range(n):  # temp files of a killed run
            remove_orphans(self.path(k))

    def path(self, k: int) -> Path:
        return self.dir / f"{self.prefix}-{k:05d}.parquet"

    def done(self, k: int) -> bool:
        """Shard ``k`` was finished by this or an earlier run with the same resume key."""
        f = self.path(k)
        if not f.exists():
            return False
        try:
            return bool(read_meta(f).get("config_hash") == self.meta.config_hash)
        except Exception:  # an unreadable leftover is recomputed, never trusted
            return False

    def todo(self, *beside: Shards) -> list[int]:
        """The shards still to compute, in order (the others were finished by an interrupted
        run): the one resume head of every sharded stage. ``beside``: the shards of other
        outputs written unit by unit with these (same ``n``); a unit is finished only when
        it is finished in all of them, and is then computed again for all."""
        if any(b.n != self.n for b in beside):
            raise ValueError(f"shards beside {self.dir} must have {self.n} units")
        left = [k for k in range(self.n) if not (self.done(k) and all(b.done(k) for b in beside))]
        for s in (self, *beside):
            s.reused = self.n - len(left)
        return left

    def write(self, k: int, table: pa.Table) -> None:
        """Commit shard ``k`` (atomically), then honour a test hold."""
        write_table(table, self.path(k), self.meta)
        self.committed(k)

    def committed(self, k: int) -> None:
        """Count shard ``k`` as finished by this run (for shards written by another writer)."""
        self.computed += 1
        print(f"{self.stage}: shard {k + 1}/{self.n} written", flush=True)
        hold(self.stage, self.computed)

    def read(self, k: int) -> pa.Table:
        return read_table(self.path(k))

    def tables(self) -> Iterator[pa.Table]:
        for k in range(self.n):
            yield self.read(k)

    def concat(self) -> pa.Table:
        """All shards as one table, in shard order (for outputs small enough to hold)."""
        return pa.concat_tables([t.replace_schema_metadata(None) for t in self.tables()])

    def summary(self) -> str:
        return f"{self.stage}: {self.n} shards, {self.reused} reused from an interrupted run, {self.computed} computed"

    def prune(self) -> None:
        """Remove shards beyond ``n`` (left by an earlier run with more work) and temp files."""
        for f in self.dir.glob(f"{self.prefix}-*.parquet"):
            if int(f.stem.rsplit("-", 1)[1]) >= self.n:
                f.unlink()
        for f in self.dir.glob(".tmp-*"):
            f.unlink()

    def promote(self, out: str | os.PathLike[str]) -> None:
        """Make the shard directory itself the output (one rename)."""
        self.prune()
        write_index(self.dir)  # what the readers check the directory against (cotlens.io.provenance)
        out = Path(out)
        if out.exists():
            shutil.rmtree(out)
        os.replace(self.dir, out)

    def discard(self) -> None:
        """The final output is written: the shards are no longer needed."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def finish(self, out: str | os.PathLike[str], meta: RunMeta) -> int:
        """Every shard in order as the one output table ``out`` (written atomically with
        ``meta``), then the shards discarded; the rows written."""
        print(self.summary(), flush=True)
        runs = self.concat()
        write_table(runs, out, meta)
        self.discard()
        return int(runs.num_rows)


def file_digest(*paths: str | Path) -> str:
    """Content hash of upstream files (the resume key of sharded outputs)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def hold(stage: str, n_done: int) -> None:
    """Test hook: wait to be killed after the ``n``-th shard of ``stage`` (see module doc)."""
    spec = os.environ.get(HOLD_ENV, "")
    if not spec:
        return
    want_stage, want_n, marker = spec.split(":", 2)
    if want_stage != stage or int(want_n) != n_done:
        return
    Path(marker).write_text(f"{stage} {n_done} {os.getpid()}\n")
    time.sleep(HOLD_SECONDS)
