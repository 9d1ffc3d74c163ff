"""Provenance: content fingerprints, the input checks before every stage, config limits,
orphaned temp files and the clear errors of hostile inputs (issue #18)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from cotlens.digits import tables
from cotlens.errors import CotlensError
from cotlens.io.atomic import atomic_path, orphans, remove_orphans
from cotlens.io.fingerprint import dir_content, file_hashes, local_fingerprint, of_manifest
from cotlens.io.parquet import RunMeta, read_meta, to_table, write_table
from cotlens.io.provenance import check_inputs, write_index
from cotlens.pipeline.configcheck import check_config, check_files, measure


def _prompts(ids: list[int]) -> pa.Table:
    n = len(ids)
    cols = {f.name: [None] * n for f in tables.DIGITS_PROMPTS}
    cols.update(problem_id=ids, n=[1] * n, m=[1] * n, a=[2] * n, b=[3] * n, product=[6] * n)
    cols.update(prompt=["2 * 3 ="] * n, answer=[" 6"] * n)
    return to_table({k: v for k, v in cols.items() if k in tables.DIGITS_PROMPTS.names}, tables.DIGITS_PROMPTS)


def _model_dir(root: Path, fingerprint: str) -> Path:
    d = root / "resources" / "models" / "m"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"name": "m", "source": "tiny", "fingerprint": fingerprint}))
    return d


def _table(path: Path, fingerprint: str | None, ids: list[int] | None = None) -> Path:
    meta = RunMeta("digits_confidence", "x", model="m", fingerprint=fingerprint)
    write_table(_prompts(ids or [0, 1, 2]), path, meta)
    return path


# ---- fingerprints ------------------------------------------------------------------


def test_local_fingerprint_follows_content_not_mtime_and_uses_the_cache(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    (model / "model.safetensors").write_bytes(b"x" * 1000)
    (model / "README.md").write_text("not content")
    cache = tmp_path / "hashes.json"
    fp, files = dir_content(model, cache)
    assert sorted(files) == ["config.json", "model.safetensors"] and fp.startswith("sha256:")
    assert local_fingerprint({"source": "local", "path": str(model)}, cache) == fp
    # a touch re-hashes the file (size and mtime are the cache key) and finds the same content
    os.utime(model / "model.safetensors", ns=(1, 1))
    assert local_fingerprint({"source": "local", "path": str(model)}, cache) == fp
    # the cache answers without reading: a (size, mtime, inode, ctime) hit is trusted
    key = str((model / "model.safetensors").resolve())
    data = json.loads(cache.read_text())
    data[key][4] = "cached"
    cache.write_text(json.dumps(data))
    assert file_hashes([model / "model.safetensors"], cache)[key] == "cached"
    # ... but not where content is asked for (prepare, load)
    assert file_hashes([model / "model.safetensors"], cache, fresh=True)[key] != "cached"
    # new weights at the same path: a new fingerprint
    (model / "model.safetensors").write_bytes(b"y" * 1001)
    assert local_fingerprint({"source": "local", "path": str(model)}, cache) != fp
    assert local_fingerprint({"source": "local", "path": str(tmp_path / "nope")}, cache) == "missing"
    assert local_fingerprint({"source": "pypi", "id": "x"}, cache) == ""


@pytest.mark.parametrize("how", ["cp -p", "rsync -a"])
def test_weights_swapped_with_the_same_size_and_mtime_are_seen(tmp_path: Path, how: str) -> None:
    """The issue's case: another checkpoint of the same shape copied over the weights with
    their mtime kept. ``cp -p`` writes into the same inode (its ctime moves); ``rsync -a``
    renames a new file in (a new inode)."""
    import shutil

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"a": 1}')
    w = model / "model.safetensors"
    w.write_bytes(b"x" * 1000)
    os.utime(w, ns=(10**18, 10**18))
    cache = tmp_path / "hashes.json"
    fp = local_fingerprint({"source": "local", "path": str(model)}, cache)
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"y" * 1000)
    os.utime(other, ns=(10**18, 10**18))
    ino = w.stat().st_ino
    time.sleep(0.05)  # ctime ticks with the kernel's coarse clock (a few ms)
    if how == "cp -p":
        shutil.copyfile(other, w)  # into the existing file, as cp does
        shutil.copystat(other, w)
        assert w.stat().st_ino == ino
    else:
        tmp = model / ".model.safetensors.tmp"
        shutil.copy2(other, tmp)
        os.replace(tmp, w)
    assert (w.stat().st_size, w.stat().st_mtime_ns) == (1000, 10**18)  # what the old cache trusted
    assert local_fingerprint({"source": "local", "path": str(model)}, cache) != fp


def test_of_manifest_per_source() -> None:
    assert of_manifest({"source": "hub", "repo": "r/m", "commit": "abc"}) == "hub:r/m@abc"
    assert of_manifest({"source": "pypi", "sha256": "f00"}) == "sha256:f00"
    assert of_manifest({"source": "local", "fingerprint": "sha256:1"}) == "sha256:1"
    with pytest.raises(ValueError, match="no content fingerprint"):
        of_manifest({"name": "m", "source": "local"})


# ---- the input checks (cotlens.io.provenance) ------------------------------------------


def test_an_upstream_file_from_another_model_is_one_clear_error(tmp_path: Path) -> None:
    model = _model_dir(tmp_path, "sha256:new")
    ok = _table(tmp_path / "results" / "default" / "digits" / "m" / "a.parquet", "sha256:new")
    check_inputs({"model": str(model), "a": str(ok)})
    old = _table(tmp_path / "results" / "default" / "digits" / "m" / "b.parquet", "sha256:old")
    with pytest.raises(CotlensError, match=r"made from model 'm' with content sha256:old.*would mix two models"):
        check_inputs({"model": str(model), "a": str(ok), "b": str(old)})
    # without a model input (a figure): two inputs of different models
    with pytest.raises(CotlensError, match="were made from different models"):
        check_inputs({"a": str(ok), "b": str(old)})


def test_a_table_made_with_another_config_is_refused_naming_both(tmp_path: Path) -> None:
    """A table written in a Snakemake job records its run, rule and params; a reader whose
    current config gives that rule other params refuses it (a copy from another run)."""
    from cotlens.io.parquet import config_hash, made_with
    from cotlens.pipeline.stageparams import stage_params

    cfg = {"run": "default", "digits": {"prompts": {"seed": 0, "n_digits": [1, 2], "m_digits": [1], "n_per_cell": 4}}}
    other = {**cfg, "run": "r2", "digits": {"prompts": {**cfg["digits"]["prompts"], "seed": 7}}}

    def current(config: dict[str, Any]) -> Any:
        return lambda rule: (config_hash(p := stage_params(rule, config)), p)

    prompts = tmp_path / "results" / "default" / "digits" / "prompts.parquet"
    with made_with("r2", "digits_prompts", stage_params("digits_prompts", other)):
        _table(prompts, None)
    assert read_meta(prompts)["made_with"]["params"]["seed"] == 7
    check_inputs({"prompts": str(prompts)}, current(other), "r2")
    with pytest.raises(
        CotlensError, match=r"made by digits_prompts of run 'r2', not this run 'default'.*\(seed: 7 -> 0\)"
    ):
        check_inputs({"prompts": str(prompts)}, current(cfg), "default")
    # a config edit that the rule does not read changes nothing (the figures, another study)
    check_inputs({"prompts": str(prompts)}, current({**other, "figures": {"dpi": 1}}), "r2")
    # outside a Snakemake job nothing is recorded, so nothing is compared
    _table(prompts, None)
    assert "made_with" not in read_meta(prompts)
    check_inputs({"prompts": str(prompts)}, current(cfg), "default")


def test_a_table_with_duplicate_keys_or_another_schema_stops_before_the_stage(tmp_path: Path) -> None:
    prompts = tmp_path / "results" / "default" / "digits" / "prompts.parquet"
    _table(prompts, None, [0, 1, 1])
    with pytest.raises(CotlensError, match=r"1 duplicate rows: its key \['problem_id'\]"):
        check_inputs({"prompts": str(prompts)})
    write_table(pa.table({"problem_id": [0]}), prompts, RunMeta("digits_prompts", "x"))
    with pytest.raises(CotlensError, match="does not have the schema of digits/prompts"):
        check_inputs({"prompts": str(prompts)})


def test_a_shard_directory_is_checked_against_its_index(tmp_path: Path) -> None:
    d = tmp_path / "results" / "default" / "circuits" / "m" / "activations"
    for k in range(3):
        _table(d / f"part-{k:05d}.parquet", "sha256:a", [k])
    write_index(d)
    check_inputs({"activations": str(d)})
    (d / "part-00001.parquet").unlink()
    with pytest.raises(CotlensError, match=r"does not hold the shards it was written with: missing \['part-00001"):
        check_inputs({"activations": str(d)})
    _table(d / "part-00001.parquet", "sha256:a", [1, 2])  # same name, other rows
    with pytest.raises(CotlensError, match="has 2 rows .* but was written with 1 rows"):
        check_inputs({"activations": str(d)})
    index = (d / "_index.json").read_text()
    for broken in (index[: len(index) // 2], "[]", '{"shards": {"part-00000.parquet": 3}}'):
        (d / "_index.json").write_text(broken)  # truncated (a full disk), or edited
        with pytest.raises(
            CotlensError,
            match=r"(?s)_index.json is not a complete shard index .*snakemake --forcerun digits_confidence",
        ):
            check_inputs({"activations": str(d)})


# ---- config limits ------------------------------------------------------------------

BOMB = 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
)


def test_an_alias_bomb_is_refused_within_a_second_naming_the_file(tmp_path: Path) -> None:
    f = tmp_path / "bomb.yaml"
    f.write_text(BOMB)  # 9**10 = 3.5e9 values expanded
    t = time.perf_counter()
    with pytest.raises(CotlensError, match=rf"config {f}: .*expands to more than 1,000,000 values"):
        check_files([f])
    assert time.perf_counter() - t < 1.0
    # the command-line form (the Makefile runs it before Snakemake parses the file)
    res = subprocess.run([sys.executable, "-m", "cotlens.pipeline.configcheck", str(f)], capture_output=True, text=True)
    assert res.returncode == 2 and "expands to more than" in res.stderr


@pytest.mark.parametrize(
    "text, expect",
    [
        ("x: &x\n  - *x\n", r"x\[0\] contains itself \(a YAML alias cycle\)"),
        ("1: a\n", r"key 1 in the top level is not a name \(int\)"),
        ("runtime:\n\tdtype: float32\n", r"is not valid YAML at line 2, column 1"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", r"nested 33 levels deep"),
    ],
)
def test_hostile_config_files_get_one_error_naming_the_file(tmp_path: Path, text: str, expect: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(CotlensError, match=expect) as e:
        check_files([f])
    assert str(f) in str(e.value)


def test_a_config_file_too_large_is_refused_before_parsing(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    with open(f, "w") as fh:
        fh.write("x:\n")
        fh.write("  - 1\n" * 1_000_000)  # 6 MB
    t = time.perf_counter()
    with pytest.raises(CotlensError, match=r"is 5.7 MiB; a cotlens configuration is a few KB"):
        check_files([f])
    assert time.perf_counter() - t < 0.5


def test_shared_subtrees_are_measured_once_and_ordinary_configs_pass() -> None:
    leaf = list(range(100))
    assert measure({"a": leaf, "b": leaf}) == 1 + 2 * 101
    check_config({"studies": ["circuits"], "runtime": {"dtype": "float32"}}, ["config.yaml"])


# ---- orphaned temp files ------------------------------------------------------------


def test_only_temp_files_of_dead_processes_are_orphans(tmp_path: Path) -> None:
    out = tmp_path / "samples.parquet"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    gone = tmp_path / f".tmp-samples.parquet-{int(dead.stdout)}@{host}-abc123_x"
    old = tmp_path / ".tmp-samples.parquet-k2j3h4g5"  # the naming before owners were recorded
    live = tmp_path / f".tmp-samples.parquet-{os.getpid()}@{host}-abc123_x"
    elsewhere = tmp_path / ".tmp-samples.parquet-1@another-node-abc123_x"
    other_output = tmp_path / f".tmp-samples.parquet-b-{int(dead.stdout)}@{host}-abc123_x"
    for p in (gone, old, live, elsewhere, other_output):
        p.write_bytes(b"")
    (tmp_path / ".tmp-samples.parquet-999999@x-dir1234").mkdir()
    assert sorted(orphans(out)) == sorted([gone, old])
    assert sorted(remove_orphans(out)) == sorted([gone, old])
    assert live.exists() and elsewhere.exists() and other_output.exists()
    # what atomic_path makes now carries its owner, and is not an orphan while it is open
    with atomic_path(out) as tmp:
        assert tmp.name.startswith(f".tmp-samples.parquet-{os.getpid()}@{host}-")
        assert tmp not in orphans(out)


# ---- across runs --------------------------------------------------------------------


def test_compare_reads_figure_jsons_by_path_and_flattens_numbers_and_texts(tmp_path: Path) -> None:
    from cotlens.pipeline.compare import collect, where

    f = tmp_path / "results" / "paper" / "digits" / "qwen2.5-1.5b" / "figures" / "digit_conditioning.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps({"claim": "c", "conditioning": {"conditioned_last": 0.43, "n": 24, "ci95": [0, 1]}}))
    assert where(f) == ("paper", "digits", "qwen2.5-1.5b", "digit_conditioning")
    rows = collect([f]).to_pylist()
    assert [(r["key"], r["value"], r["text"]) for r in rows] == [
        ("claim", None, "c"),
        ("conditioning.conditioned_last", 0.43, None),
        ("conditioning.n", 24.0, None),
    ]
    with pytest.raises(CotlensError, match="is not a figure JSON"):
        where(tmp_path / "x.json")


def test_run_and_model_names_are_one_path_component(tmp_path: Path) -> None:
    from cotlens.pipeline.configcheck import check_names, name_problem

    check_names({"run": "paper-7b", "models": {"llama-2-7b": {}, "模型": {}, "qwen2.5_0.5b": {}}})
    for bad, why in [
        ("../x", "contains '/'"),
        ("x/../../config", "contains '/'"),
        ("..", "contains '..'"),
        (".hidden", "starts with '.'"),
        ("a" * 65, "65 characters long"),
        ("a b", "contains ' '"),
        ("", "is empty"),
        ("e\u0301", "not in Unicode normal form NFC"),
    ]:
        assert why in (name_problem(bad) or ""), bad
    with pytest.raises(CotlensError, match=r"run '\.\./x' \(over.yaml\) contains '/'"):
        check_names({"run": "../x"}, ["over.yaml"])
    with pytest.raises(CotlensError, match=r"model 'a/b' .*contains '/'"):
        check_names({"run": "ok", "models": {"a/b": {}}})


def test_a_retired_setting_is_one_clear_error(tmp_path: Path) -> None:
    """circuits.extract.batch_size / shard_size went with circuits_extract: an older config
    gets one line naming the key, the file and why, before the schema's dump."""
    old = tmp_path / "old.yaml"
    old.write_text("circuits:\n  extract: {positions: [answer], mlp: false, batch_size: 8, shard_size: 64}\n")
    with pytest.raises(CotlensError, match=rf"config {old}: circuits.extract.batch_size is no longer a setting") as e:
        check_files([old])
    assert "delete circuits.extract.batch_size" in str(e.value)
    check_config({"circuits": {"extract": {"positions": ["answer"], "mlp": False}}}, ["config.yaml"])
