"""io.shards.Shards.todo: the one resume head of the sharded stages (sample, extract, patch,
the neuron and expert effects)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from cotlens.io.parquet import RunMeta
from cotlens.io.shards import Shards


def _table(k: int) -> pa.Table:
    return pa.table({"k": pa.array([k], pa.int64())})


def test_only_the_units_finished_in_every_output_are_kept(tmp_path: Path) -> None:
    """Two outputs written unit by unit (patching and pathways): a unit a kill left finished in
    one of them only is computed again for both; the reuse count says how many were kept."""
    meta = RunMeta.of("circuits_patch", {"a": 1})
    first, second = Shards(tmp_path / "a.parquet", "s", meta, 4), Shards(tmp_path / "b.parquet", "s", meta, 4)
    assert first.todo(second) == [0, 1, 2, 3] and first.reused == second.reused == 0
    for k in (0, 1, 2):
        first.write(k, _table(k))
    second.write(0, _table(0))
    second.write(2, _table(2))
    assert first.todo(second) == [1, 3] and first.reused == second.reused == 2
    assert first.todo() == [3] and first.reused == 3  # alone, its own finished units count


def test_a_unit_from_another_configuration_is_computed_again(tmp_path: Path) -> None:
    old = Shards(tmp_path / "a.parquet", "s", RunMeta.of("s", {"a": 1}), 2)
    old.write(0, _table(0))
    new = Shards(tmp_path / "a.parquet", "s", RunMeta.of("s", {"a": 2}), 2)
    assert new.todo() == [0, 1] and new.reused == 0
    (tmp_path / "a.parquet.partial" / "part-00001.parquet").write_bytes(b"not parquet")
    assert old.todo() == [1]  # an unreadable leftover is never trusted


def test_outputs_cut_into_different_units_are_refused(tmp_path: Path) -> None:
    meta = RunMeta.of("s", {})
    with pytest.raises(ValueError, match="must have 3 units"):
        Shards(tmp_path / "a.parquet", "s", meta, 3).todo(Shards(tmp_path / "b.parquet", "s", meta, 2))
