"""Stage ``circuits_sample``: CoT generation, answer/step parsing and scoring, and the
activations at the chosen positions, recorded while generating.

The residual stream after every block and the per-head attention outputs (optionally the
FFN neurons) are taken from the generation's own forwards (``StepCapture``: the prompt's
last token, then every generated token fed back, the last one once more), not from a
second forward over each finished sample. The in-context prediction there is the
model's top next token; the prior one comes from the same question with its facts
removed, run after the prefix both prompts share (the exemplars and the question's
start), which generation ran first and kept (``split``). The vectors equal a forward over
the finished sample to float32 round-off (``tests/integration/test_stages.py``).

Resumable (``cotlens.io.shards``): each batch is one shard of generated token ids and one
of activations, with its own random generator seeded from (seed, batch index), so a rerun
after a crash generates only the missing batches and gives the same bytes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cotlens.circuits import tables
from cotlens.circuits.extract import ExtractConfig, SampleRow, activation_schema
from cotlens.circuits.samples import sample_batch, samples_table
from cotlens.core.sampling import Generation, SampleConfig
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import read_table, to_table, write_table
from cotlens.io.shards import Shards
from cotlens.models.adapters import check_context
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.resume import resume_key
from cotlens.pipeline.stage import Params, Paths, model_meta


def sample_config(params: Mapping[str, Any]) -> SampleConfig:
    sc = SampleConfig(**{k: v for k, v in params.items() if k != "extract"})
    if sc.n_samples > 1 and sc.temperature <= 0:
        raise CotlensError(
            "sample.n_samples > 1 with greedy decoding gives identical samples",
            "set sample.temperature > 0, or n_samples: 1",
        )
    return sc


def extract_config(params: Mapping[str, Any]) -> ExtractConfig:
    c = dict(params["extract"])
    return ExtractConfig(positions=tuple(c["positions"]), mlp=bool(c["mlp"]))


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    prompts, model_dir = inputs["prompts"], inputs["model"]
    out, acts_out = outputs["samples"], outputs["activations"]
    sc, ec = sample_config(params), extract_config(params)
    tab = read_table(prompts).to_pylist()
    if not tab:
        raise CotlensError(f"the prompt set {prompts} is empty", "check the prompts section of the config")
    lm = load_for_stage(model_dir, runtime, threads)
    enc = lm.tokenizer([r["prompt"] for r in tab])["input_ids"]
    enc_nf = lm.tokenizer([r["prompt_nofacts"] for r in tab])["input_ids"]
    longest = max(range(len(enc)), key=lambda i: len(enc[i]))
    check_context(
        lm.model, len(enc[longest]) + sc.max_new_tokens, f"prompt {tab[longest]['prompt_id']} plus max_new_tokens"
    )
    jobs = [(i, s) for i in range(len(tab)) for s in range(sc.n_samples)]
    jobs.sort(key=lambda j: -len(enc[j[0]]))  # similar lengths batch together
    batches = [jobs[b : b + sc.batch_size] for b in range(0, len(jobs), sc.batch_size)]
    key_cfg = resume_key(__name__, params, runtime, prompts, Path(model_dir) / "manifest.json")
    meta = model_meta("circuits_sample", key_cfg, lm.manifest, lm.dtype)
    shards = Shards(out, "circuits_sample", meta, len(batches))
    act_shards = Shards(acts_out, "circuits_sample (activations)", meta, len(batches))
    schema = activation_schema(lm, ec)
    todo = shards.todo(act_shards)  # the rest: finished by an interrupted run
    prog = Progress(len(todo), "batches")
    for k in todo:
        batch = batches[k]
        rows = [SampleRow(tab[i]["prompt_id"], s, enc[i], enc_nf[i], [], [], -1) for i, s in batch]
        gen = torch.Generator().manual_seed(sc.seed * 1_000_003 + k)  # per batch: resumable
        outs, acts = sample_batch(lm, rows, sc, ec, schema, gen)
        act_shards.write(k, acts)
        shard = {
            "prompt_idx": [i for i, _ in batch],
            "sample_idx": [s for _, s in batch],
            "token_ids": [g.token_ids for g in outs],
            "stop_reason": [g.stop_reason for g in outs],
        }
        shards.write(k, to_table(shard, tables.SAMPLE_SHARD))
        prog.update(note=f"{len(batch)} generations")
    prog.close()
    print(shards.summary(), flush=True)
    results = {  # every batch, as written: the computed ones and those of an interrupted run
        (r["prompt_idx"], r["sample_idx"]): Generation(r["token_ids"], r["stop_reason"])
        for t in shards.tables()
        for r in t.to_pylist()
    }
    act_shards.promote(acts_out)  # the directory first: the samples table marks the stage done
    table = samples_table(lm.tokenizer, tab, enc, enc_nf, results)
    write_table(table, out, model_meta("circuits_sample", params, lm.manifest, lm.dtype))
    shards.discard()
    return len(results)
