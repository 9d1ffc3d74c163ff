from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cotlens.circuits import tables
from cotlens.errors import CotlensError
from cotlens.io.atomic import atomic_path
from cotlens.io.parquet import (
    RunMeta,
    ShardWriter,
    arrow_to_vectors,
    config_hash,
    read_meta,
    read_table,
    to_table,
    vectors_to_arrow,
    write_table,
)


def _acts(n: int, d: int = 8, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    schema = tables.activations(d, 2, d // 2, None)
    data = {f.name: np.arange(n) % 7 for f in schema if f.name not in ("pos_kind", "resid", "attn_heads")}
    data["pos_kind"] = ["step_end"] * n
    data["resid"] = vectors_to_arrow(rng.standard_normal((n, d)).astype(np.float32))
    data["attn_heads"] = vectors_to_arrow(rng.standard_normal((n, d)).astype(np.float32))
    return to_table(data, schema)


def test_vector_roundtrip_is_exact(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((1000, 96)).astype(np.float32)
    t = pa.table({"v": vectors_to_arrow(x)})
    pq.write_table(t, tmp_path / "v.parquet")
    back = arrow_to_vectors(pq.read_table(tmp_path / "v.parquet").column("v"))
    np.testing.assert_array_equal(back, x)
    # slices keep their offset
    np.testing.assert_array_equal(arrow_to_vectors(t.column("v").slice(10, 5)), x[10:15])


def test_table_roundtrip_schema_and_meta(tmp_path: Path) -> None:
    t = _acts(50)
    meta = RunMeta("extract", config_hash({"a": 1}), model="m", revision="r", dtype="float32")
    write_table(t, tmp_path / "a.parquet", meta)
    back = read_table(tmp_path / "a.parquet")
    assert back.schema.remove_metadata() == t.schema
    assert back.equals(t.replace_schema_metadata(back.schema.metadata))
    m = read_meta(tmp_path / "a.parquet")
    assert m["model"] == "m" and m["dtype"] == "float32" and m["config_hash"] == config_hash({"a": 1})
    assert {"torch", "transformers", "pyarrow"} <= set(m["versions"])
    # payload columns carry no statistics; id columns do
    rg = pq.ParquetFile(tmp_path / "a.parquet").metadata.row_group(0)
    stats = {rg.column(i).path_in_schema: rg.column(i).is_stats_set for i in range(rg.num_columns)}
    assert stats["prompt_id"] and not stats["resid"]


def test_vectors_describe_themselves(tmp_path: Path) -> None:
    """dtype and shape in the field metadata; cotlens.read_vectors gives [rows, *shape];
    the stage's resolved config is in the file's metadata beside its hash."""
    import cotlens

    t = _acts(12)
    write_table(t, tmp_path / "a.parquet", RunMeta.of("extract", {"layers": [1, 2], "mlp": False}))
    f = pq.read_schema(tmp_path / "a.parquet").field("attn_heads")
    assert f.metadata[b"dtype"] == b"float32" and f.metadata[b"shape"] == b"[2, 4]"
    heads = cotlens.read_vectors(tmp_path / "a.parquet", "attn_heads")
    assert heads.shape == (12, 2, 4) and heads.dtype == np.float32
    np.testing.assert_array_equal(heads.reshape(12, 8), arrow_to_vectors(t.column("attn_heads")))
    assert cotlens.read_vectors(t, "resid").shape == (12, 8)
    m = read_meta(tmp_path / "a.parquet")
    assert m["config"] == {"layers": [1, 2], "mlp": False} and m["config_hash"] == config_hash(m["config"])
    with pytest.raises(CotlensError, match="not a cotlens vector column"):
        cotlens.read_vectors(t, "prompt_id")
    with pytest.raises(CotlensError, match="no column 'nope'"):
        cotlens.read_vectors(t, "nope")


def test_same_data_same_bytes(tmp_path: Path) -> None:
    meta = RunMeta("extract", "h")
    write_table(_acts(20), tmp_path / "1.parquet", meta)
    write_table(_acts(20), tmp_path / "2.parquet", meta)
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()


def test_to_table_rejects_wrong_columns() -> None:
    with pytest.raises(CotlensError, match="missing"):
        to_table({"prompt_id": [1]}, tables.LENS)


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_shard_writer_abort_leaves_no_file(tmp_path: Path) -> None:
    t = _acts(10)
    w = ShardWriter(tmp_path / "s.parquet", t.schema, RunMeta("extract", "h"))
    w.write(t)
    w.abort(RuntimeError("boom"))
    assert list(tmp_path.iterdir()) == []
    w = ShardWriter(tmp_path / "s.parquet", t.schema, RunMeta("extract", "h"))
    w.write(t)
    w.write(t)
    w.close()
    assert read_table(tmp_path / "s.parquet").num_rows == 20


def test_shard_writer_as_a_context_manager_closes_or_aborts(tmp_path: Path) -> None:
    t = _acts(10)
    with (
        pytest.raises(RuntimeError, match="boom"),
        ShardWriter(tmp_path / "s.parquet", t.schema, RunMeta("x", "h")) as w,
    ):
        w.write(t)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # aborted: no file, no temp file
    with ShardWriter(tmp_path / "s.parquet", t.schema, RunMeta("x", "h")) as w:
        w.write(t)
        w.write(t)
    assert read_table(tmp_path / "s.parquet").num_rows == 20 and len(list(tmp_path.iterdir())) == 1


def test_shard_writer_groups_small_batches(tmp_path: Path) -> None:
    t = _acts(4)
    for group_rows, groups in ((0, 5), (10, 2)):  # 5 batches of 4 rows: 12 buffered -> one group, then 8 at close
        path = tmp_path / f"g{group_rows}.parquet"
        w = ShardWriter(path, t.schema, RunMeta("patch", "h"), group_rows=group_rows)
        for _ in range(5):
            w.write(t)
        w.close()
        assert pq.ParquetFile(path).metadata.num_row_groups == groups
        assert read_table(path).equals(
            pa.concat_tables([t] * 5).replace_schema_metadata(read_table(path).schema.metadata)
        )
    w = ShardWriter(tmp_path / "a.parquet", t.schema, RunMeta("patch", "h"), group_rows=100)
    w.write(t)
    w.abort(RuntimeError("boom"))  # buffered rows are dropped, no file
    assert not (tmp_path / "a.parquet").exists()


def test_missing_file_error(tmp_path: Path) -> None:
    with pytest.raises(CotlensError, match="does not exist"):
        read_table(tmp_path / "nope.parquet")


def test_columns_take_each_row_by_name_and_refuse_a_mismatch() -> None:
    import pyarrow as pa

    from cotlens.errors import CotlensError
    from cotlens.io.parquet import Columns, to_table

    schema = pa.schema([("a", pa.int32()), ("b", pa.string())])
    cols = Columns(schema)
    cols.add(b="x", a=1)  # by name: the order of the keywords does not matter
    cols.add(a=2, b=None)
    assert len(cols) == 2 and cols["a"] == [1, 2]
    assert cols.table().equals(to_table({"a": [1, 2], "b": ["x", None]}, schema))
    with pytest.raises(CotlensError, match=r"missing \['b'\], unexpected \['c'\]"):
        cols.add(a=3, c="y")
    assert len(cols) == 2  # the refused row added nothing
