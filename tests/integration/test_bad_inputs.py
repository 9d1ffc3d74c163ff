"""Bad inputs the table in docs/bad-inputs.md lists (the rest of its rows are tested in
test_workflow.py, test_stages.py and unit/test_models.py): each gives one CotlensError
that names the input and what to do, and leaves nothing that looks complete."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from cotlens.circuits.stages import prompts, sample
from cotlens.errors import CotlensError
from cotlens.io.parquet import read_table
from cotlens.models.prepare import prepare
from cotlens.models.registry import resolve

pytestmark = pytest.mark.integration

PCFG = {
    "seed": 1,
    "n_per_cell": 1,
    "hops": [1, 2, 3],
    "ontologies": ["fictional"],
    "distractors": ["none", "relevant"],
    "negation": [False, True],
    "n_shots": 1,
}
RT = {"dtype": "float32", "device": "cpu", "attn": "sdpa"}
SMALL_KB = 24  # room for some of the tiny model's activation shards, not all
ECFG = {"positions": ["last_prompt", "step_end", "answer"], "mlp": True}
SCFG = {
    "max_new_tokens": 12,
    "batch_size": 2,
    "extract": ECFG,
}  # a shard of samples and one of activations per 2 prompts


def run_sample(prompts_file: Path, model: Path, out: Path) -> None:
    """circuits_sample into ``out``: samples.parquet and the activations directory."""
    sample.run(
        {"prompts": str(prompts_file), "model": str(model)},
        {"samples": str(out / "samples.parquet"), "activations": str(out / "activations")},
        SCFG,
        RT,
        1,
    )


@contextlib.contextmanager
def tmpfs(path: Path, size_kb: int, readonly: bool = False) -> Iterator[Path]:
    """A small (or read-only) file system mounted at ``path`` (needs root, as CI has)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs needs root: run the tests as root (CI does)")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size_kb}k" + (",ro" if readonly else "")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs at {path}: {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def leftovers(d: Path) -> list[str]:
    """Temp files and anything named like a finished output."""
    return sorted(str(p.relative_to(d)) for p in d.rglob("*") if p.name.startswith(".tmp-") or p.suffix == ".parquet")


@pytest.fixture(scope="module")
def prompt_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("prompts")
    prompts.run({}, {"prompts": str(d / "prompts.parquet")}, PCFG, {}, 1)
    return d / "prompts.parquet"


def test_safetensors_with_wrong_shapes_is_refused_by_prepare(tmp_path: Path, tiny_model_src: Path) -> None:
    src = tmp_path / "model"
    shutil.copytree(tiny_model_src, src)
    f = next(src.glob("*.safetensors"))
    sd = load_file(f)
    k = next(k for k in sd if k.endswith("self_attn.q_proj.weight"))
    sd[k] = torch.zeros(sd[k].shape[0] + 8, sd[k].shape[1])
    save_file(sd, f, metadata={"format": "pt"})
    with pytest.raises(CotlensError, match=rf"tensor {k} has shape \[72, 64\].*implies \[64, 64\]") as e:
        prepare(resolve("m", {"m": {"source": "local", "path": str(src)}}), tmp_path / "out" / "m")
    assert "use the config.json that came with them" in str(e.value)
    assert not (tmp_path / "out" / "m").exists() and leftovers(tmp_path / "out") == []


def test_non_finite_activations_stop_sample_and_nothing_is_written(
    tmp_path: Path, tiny_model_src: Path, prompt_set: Path
) -> None:
    src = tmp_path / "model"
    shutil.copytree(tiny_model_src, src)
    f = next(src.glob("*.safetensors"))
    sd = load_file(f)
    sd["model.layers.1.mlp.down_proj.weight"][0, 0] = float("inf")  # inf * 0 -> NaN downstream
    save_file(sd, f, metadata={"format": "pt"})
    prepared = tmp_path / "prepared"
    prepare(resolve("m", {"m": {"source": "local", "path": str(src)}}), prepared)
    out = tmp_path / "res"
    with pytest.raises(CotlensError, match=r"non-finite values in resid activations \(prompt ids \[") as e:
        run_sample(prompt_set, prepared, out)
    assert "nothing was written" in str(e.value)
    assert not (out / "activations").exists() and not (out / "samples.parquet").exists()
    assert leftovers(out) == []  # not one shard: the first batch already failed


def test_full_disk_is_one_clear_error_then_the_rerun_resumes(
    tmp_path: Path, tiny_prepared: Path, prompt_set: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "small", SMALL_KB) as fs:
        out = fs / "activations"
        with pytest.raises(
            CotlensError, match=rf"cannot write {fs}/(activations|samples\.parquet)\.partial/part-\d+.parquet: No space"
        ) as e:
            run_sample(prompt_set, tiny_prepared, fs)
        assert "free space" in str(e.value)
        assert not out.exists() and not (fs / "samples.parquet").exists()
        kept = sorted((fs / "activations.partial").iterdir())
        assert kept and all(p.name.startswith("part-") for p in kept)  # no temp file
        for p in kept:
            assert read_table(p).num_rows > 0  # each one complete and readable
        done = len([p for p in kept if (fs / "samples.parquet.partial" / p.name).exists()])
        # space freed (the file system grown): the rerun keeps the finished batches and finishes
        subprocess.run(["mount", "-o", "remount,size=16m", str(fs)], check=True)
        capsys.readouterr()
        run_sample(prompt_set, tiny_prepared, fs)
        assert f"{done} reused from an interrupted run" in capsys.readouterr().out
        assert read_table(out).num_rows > 0 and not (fs / "activations.partial").exists()
        assert read_table(fs / "samples.parquet").num_rows == 12


def test_read_only_results_directory_is_one_clear_error(tmp_path: Path, tiny_prepared: Path, prompt_set: Path) -> None:
    with tmpfs(tmp_path / "ro", 1024, readonly=True) as fs:
        with pytest.raises(CotlensError, match=rf"cannot write {fs}/samples.parquet.partial: Read-only file system"):
            run_sample(prompt_set, tiny_prepared, fs)
        with pytest.raises(CotlensError, match=rf"cannot write {fs}/prompts.parquet: Read-only file system") as e:
            prompts.run({}, {"prompts": str(fs / "prompts.parquet")}, PCFG, {}, 1)
        assert "writable directory" in str(e.value)
        assert list(fs.iterdir()) == []


def test_read_only_results_directory_stops_the_workflow_before_any_stage(workflow_copy: Path) -> None:
    with tmpfs(workflow_copy / "results", 1024, readonly=True):
        res = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1", "results/default/circuits/prompts.parquet"],
            cwd=workflow_copy,
            env={**os.environ, "PYTHONPATH": str(workflow_copy / "src")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        out = res.stdout + res.stderr
        assert res.returncode != 0
        assert "Failed to create output directory results/default/circuits" in out and "Read-only file system" in out
        assert list((workflow_copy / "results").iterdir()) == []


# ---- issue #18: the errors that were not yet one clear error -------------------------


def _fill(fs: Path) -> None:
    """Fill a small tmpfs to the last block."""
    with contextlib.suppress(OSError), open(fs / "filler", "wb", buffering=0) as fh:
        while True:
            fh.write(b"x" * 1024)


def test_full_disk_under_the_log_a_figure_and_a_streamed_table_is_one_clear_error(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    import pyarrow as pa

    from cotlens.io.figures import save
    from cotlens.io.logs import logged
    from cotlens.io.parquet import RunMeta, ShardWriter

    with tmpfs(tmp_path / "full", 64) as fs:
        _fill(fs)
        # the log (transformers' progress bars wrote into it: three chained OSErrors before)
        with pytest.raises(CotlensError, match=rf"cannot write {fs}/stage.log: No space left on device") as e:
            with logged(fs / "stage.log"):
                for _ in range(100):
                    print("x" * 4096)
        assert e.value.__suppress_context__  # one error shown, not a chain of OSErrors
        # a figure (matplotlib raised an AttributeError from its half-closed file)
        fig = plt.figure()
        fig.gca().plot(range(1000))
        with pytest.raises(CotlensError, match=rf"cannot write {fs}/f.png: No space left on device"):
            save(fig, [fs / "f.png"], dpi=300)
        # a streamed Parquet file (a raw OSError when the writer opened it)
        schema = pa.schema([("x", pa.int32())])
        with pytest.raises(CotlensError, match=rf"cannot write {fs}/t.parquet: No space left on device"):
            with ShardWriter(fs / "t.parquet", schema, RunMeta("s", "h")) as w:
                w.write(pa.table({"x": list(range(100000))}, schema=schema))
        assert not [p.name for p in fs.iterdir() if p.name.startswith(".tmp-")]


def test_a_prompt_longer_than_the_context_is_refused_before_the_first_forward(
    tmp_path: Path, tiny_model_src: Path
) -> None:
    import json

    src = tmp_path / "short"
    shutil.copytree(tiny_model_src, src)
    cfg = json.loads((src / "config.json").read_text())
    cfg["max_position_embeddings"] = 64
    (src / "config.json").write_text(json.dumps(cfg))
    model = tmp_path / "prepared"
    prepare(resolve("short", {"short": {"source": "local", "path": str(src)}}), model)
    d = tmp_path / "p"
    prompts.run({}, {"prompts": str(d / "prompts.parquet")}, PCFG, {}, 1)
    with pytest.raises(
        CotlensError, match=r"prompt \d+ plus max_new_tokens is \d+ tokens, but the model's context is 64"
    ):
        run_sample(d / "prompts.parquet", model, d)
    assert not (d / "samples.parquet.partial").exists()  # refused before the shards
    # every other forward: the model's pre-hook
    from cotlens.models.loading import load

    lm = load(model, device="cpu")
    with pytest.raises(CotlensError, match="an input is 65 tokens, but the model's context is 64 positions"):
        lm.model(torch.zeros((1, 65), dtype=torch.long))


def test_a_tokenizer_larger_than_the_vocabulary_is_refused_at_load(tmp_path: Path, tiny_model_src: Path) -> None:
    from transformers import AutoTokenizer

    from cotlens.models.loading import load

    src = tmp_path / "bigtok"
    shutil.copytree(tiny_model_src, src)
    tok = AutoTokenizer.from_pretrained(src)
    tok.add_tokens([f"<extra{i}>" for i in range(10)])
    tok.save_pretrained(src)
    model = tmp_path / "prepared"
    prepare(resolve("bigtok", {"bigtok": {"source": "local", "path": str(src)}}), model)
    with pytest.raises(
        CotlensError, match=r"the tokenizer of model 'bigtok' has \d+ tokens, but its embedding has \d+ rows"
    ):
        load(model, device="cpu")


def test_an_unavailable_device_names_the_key_before_the_weights_load(tiny_prepared: Path) -> None:
    from cotlens.models.loading import load, pick_device

    if torch.cuda.is_available():
        want, dev = r"this machine has \d+ CUDA device", f"cuda:{torch.cuda.device_count()}"
    else:
        want, dev = "torch sees no CUDA device on this machine", "cuda"
    with pytest.raises(CotlensError, match=rf"runtime.device is '{dev}', but {want}"):
        pick_device(dev)
    with pytest.raises(CotlensError, match="runtime.device"):
        load(tiny_prepared, device=dev)


def test_a_local_model_changed_after_prepare_is_refused_at_load(tmp_path: Path, tiny_model_src: Path) -> None:
    from cotlens.models.loading import load

    src = tmp_path / "m"
    shutil.copytree(tiny_model_src, src)
    model = tmp_path / "prepared"
    prepare(resolve("m", {"m": {"source": "local", "path": str(src)}}), model)
    weights = load_file(src / "model.safetensors")
    weights = {k: v + 0.01 for k, v in weights.items()}
    save_file(weights, src / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CotlensError, match=r"the files of model 'm' in .* changed after it was prepared"):
        load(model, device="cpu")


def test_load_hashes_the_content_even_where_the_hash_cache_vouches_for_it(
    tmp_path: Path, tiny_model_src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache entry that matches the file's stat but not its bytes (any way a swap could
    fool a stat-keyed cache) does not fool the load: it reads the bytes."""
    from cotlens.io.fingerprint import CACHE_ENV, stat_key
    from cotlens.models.loading import load

    cache = tmp_path / "hashes.json"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    src = tmp_path / "m"
    shutil.copytree(tiny_model_src, src)
    model = tmp_path / "prepared"
    prepare(resolve("m", {"m": {"source": "local", "path": str(src)}}), model)
    f = src / "model.safetensors"
    old = json.loads(cache.read_text())[str(f.resolve())][4]
    save_file({k: v + 0.01 for k, v in load_file(f).items()}, f, metadata={"format": "pt"})
    cache.write_text(json.dumps({str(f.resolve()): [*stat_key(f.stat()), old]}))
    with pytest.raises(CotlensError, match=r"the files of model 'm' in .* changed after it was prepared"):
        load(model, device="cpu")


def _check_model(path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    from cotlens.pipeline import cli

    assert cli.main(["check-model", str(path)]) == 2
    return capsys.readouterr().err


def test_check_model_on_a_broken_directory_is_one_clear_error_each(
    tmp_path: Path, tiny_model_src: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's tracebacks: an invalid config.json, an unreadable directory, an
    unreadable weight file (root reads everything, so the permission errors are raised
    where the OS would raise them), and a BERT config beside Llama weights."""
    import builtins

    from transformers import BertConfig

    m = tmp_path / "m"
    shutil.copytree(tiny_model_src, m)
    good = (m / "config.json").read_text()
    (m / "config.json").write_text(good[: len(good) // 2])  # a truncated copy
    assert f"{m}/config.json is not valid JSON at line" in _check_model(m, capsys)
    (m / "config.json").write_text("[1, 2]")
    assert "config.json names no model_type" in _check_model(m, capsys)
    (m / "config.json").write_text(good)

    real_listdir, real_open = os.listdir, builtins.open

    def no_list(p: Any) -> list[str]:
        if Path(p) == m:
            raise PermissionError(13, "Permission denied", str(p))
        return real_listdir(p)

    monkeypatch.setattr(os, "listdir", no_list)
    assert f"model directory {m} is not readable (permission denied)" in _check_model(m, capsys)
    monkeypatch.setattr(os, "listdir", real_listdir)

    def no_read(p: Any, *a: Any, **k: Any) -> Any:
        if Path(str(p)) == m / "model.safetensors":
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, *a, **k)

    monkeypatch.setattr(builtins, "open", no_read)
    assert f"model file {m / 'model.safetensors'} is not readable (permission denied)" in _check_model(m, capsys)
    monkeypatch.setattr(builtins, "open", real_open)

    cfg = json.loads(good)
    BertConfig(
        vocab_size=cfg["vocab_size"], hidden_size=32, num_hidden_layers=2, num_attention_heads=2, is_decoder=True
    ).save_pretrained(m)
    err = _check_model(m, capsys)
    assert f"the weights in {m} do not fit the BertLMHeadModel its config.json describes" in err
    assert "transformers would fill the gaps with random values" in err
