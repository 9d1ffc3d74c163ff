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

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from cotlens.circuits import parsing, tables
from cotlens.circuits.extract import (
    ExtractConfig,
    SampleRow,
    activation_schema,
    captured_table,
    sites_of,
    split_points,
)
from cotlens.core.hooks import StepCapture
from cotlens.core.sampling import Generation, SampleConfig, generate_batch, stop_ids
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, read_table, to_table, write_table
from cotlens.io.shards import Shards
from cotlens.models.adapters import check_context
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.resume import resume_key
from cotlens.pipeline.stage import Params, Paths, model_meta


def token_char_ends(tok: Any, ids: Sequence[int]) -> list[int]:
    """Length of the decoded text after each generated token."""
    return [len(tok.decode(list(ids[: j + 1]))) for j in range(len(ids))]


def locate(tok: Any, ids: Sequence[int], parsed: parsing.Parsed) -> tuple[list[int], int]:
    """Token index of each step's last character and of the answer word (-1: none)."""
    ends = token_char_ends(tok, ids)
    steps = [parsing.char_to_token(ends, e - 1) for _, e in parsed.step_spans]
    ans = parsing.char_to_token(ends, parsed.answer_span[0]) if parsed.answer_span else -1
    return steps, ans


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
    tok = lm.tokenizer
    enc = tok([r["prompt"] for r in tab])["input_ids"]
    enc_nf = tok([r["prompt_nofacts"] for r in tab])["input_ids"]
    longest = max(range(len(enc)), key=lambda i: len(enc[i]))
    check_context(
        lm.model, len(enc[longest]) + sc.max_new_tokens, f"prompt {tab[longest]['prompt_id']} plus max_new_tokens"
    )
    jobs = [(i, s) for i in range(len(tab)) for s in range(sc.n_samples)]
    jobs.sort(key=lambda j: -len(enc[j[0]]))  # similar lengths batch together
    eos, _ = stop_ids(tok)

    def stop(ids: list[int]) -> str | None:
        text = tok.decode(ids)
        if not parsing.is_answer_stop(text):
            return None
        return "delimiter" if parsing.cut_point(text) < len(text) else "answer"

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
        split = split_points(rows)
        kept: list[tuple[Any, torch.Tensor]] = []
        with StepCapture(lm.model, lm.adapter, sites_of(ec), len(batch)) as cap:
            outs = generate_batch(
                lm.model,
                [enc[i] for i, _ in batch],
                sc,
                int(tok.pad_token_id),
                eos,
                stop,
                lm.device,
                torch.Generator().manual_seed(sc.seed * 1_000_003 + k),  # per batch: resumable
                on_step=cap.rows,
                split=split,
                on_split=lambda past, mask: kept.append((past, mask)),  # noqa: B023 (called within this iteration)
                feed_last=True,
            )
            captured = [cap.row(r) for r in range(len(batch))]
        for j, g in enumerate(outs):
            steps, ans = locate(tok, g.token_ids, parsing.parse_response(tok.decode(g.token_ids)))
            rows[j] = replace(rows[j], token_ids=g.token_ids, step_end_token=steps, answer_token=ans)
        act_shards.write(k, captured_table(lm, rows, captured, kept[0] if kept else None, ec, schema))
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

    cols = Columns(tables.SAMPLES)
    for i, s in sorted(results):
        g, row = results[(i, s)], tab[i]
        text = tok.decode(g.token_ids)
        parsed = parsing.parse_response(text)
        step_tok, ans_tok = locate(tok, g.token_ids, parsed)
        correct = parsing.score_steps(parsed.steps, row["gold_cot"])
        cols.add(
            prompt_id=row["prompt_id"],
            sample_idx=s,
            prompt_token_ids=enc[i],
            prompt_nofacts_token_ids=enc_nf[i],
            token_ids=g.token_ids,
            completion=text,
            stop_reason=g.stop_reason,
            answer=parsed.answer,
            answer_correct=parsed.answer == str(row["label"]),
            steps=list(parsed.steps),
            step_correct=correct,
            step_end_token=step_tok,
            answer_token=ans_tok,
            cot_exact=list(parsed.steps) == list(row["gold_cot"]),
        )
    act_shards.promote(acts_out)  # the directory first: the samples table marks the stage done
    write_table(cols.table(), out, model_meta("circuits_sample", params, lm.manifest, lm.dtype))
    shards.discard()
    return len(results)
