"""Study 1's CoT samples: a batch generated with its activations recorded, where each
step and the answer lie among the generated tokens, and the scored samples table.

``sample_batch`` is the method of ``circuits_sample``: the generation's own forwards give
the residual stream, the heads' outputs (and the FFN neurons) at the prompt's last token
and at every generated token (``StepCapture``, the last token fed once more); the prior
prediction comes from the question without its facts, run after the prefix it shares with
the prompt, which the generation ran first and kept (``split``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import torch

from cotlens.circuits import parsing, tables
from cotlens.circuits.extract import ExtractConfig, SampleRow, captured_table, sites_of, split_points
from cotlens.core.hooks import StepCapture
from cotlens.core.sampling import Generation, SampleConfig, generate_batch, stop_ids
from cotlens.io.parquet import Columns
from cotlens.models.loading import Loaded


def token_char_ends(tok: Any, ids: Sequence[int]) -> list[int]:
    """Length of the decoded text after each generated token."""
    return [len(tok.decode(list(ids[: j + 1]))) for j in range(len(ids))]


def locate(tok: Any, ids: Sequence[int], parsed: parsing.Parsed) -> tuple[list[int], int]:
    """Token index of each step's last character and of the answer word (-1: none)."""
    ends = token_char_ends(tok, ids)
    steps = [parsing.char_to_token(ends, e - 1) for _, e in parsed.step_spans]
    ans = parsing.char_to_token(ends, parsed.answer_span[0]) if parsed.answer_span else -1
    return steps, ans


def answer_stop(tok: Any) -> Callable[[list[int]], str | None]:
    """The stop rule of a generation: "answer" once the text states its answer,
    "delimiter" when the model went on past it (the text is cut there when parsed)."""

    def stop(ids: list[int]) -> str | None:
        text = tok.decode(ids)
        if not parsing.is_answer_stop(text):
            return None
        return "delimiter" if parsing.cut_point(text) < len(text) else "answer"

    return stop


def sample_batch(
    lm: Loaded,
    rows: Sequence[SampleRow],
    sc: SampleConfig,
    ec: ExtractConfig,
    schema: pa.Schema,
    gen: torch.Generator,
) -> tuple[list[Generation], pa.Table]:
    """Generate for ``rows`` (their prompt and no-facts token ids) and record the
    activations at their steps: the generations, and the batch's activations table."""
    tok = lm.tokenizer
    eos, _ = stop_ids(tok)
    kept: list[tuple[Any, torch.Tensor]] = []
    with StepCapture(lm.model, lm.adapter, sites_of(ec), len(rows)) as cap:
        outs = generate_batch(
            lm.model,
            [r.prompt_ids for r in rows],
            sc,
            int(tok.pad_token_id),
            eos,
            answer_stop(tok),
            lm.device,
            gen,
            on_step=cap.rows,
            split=split_points(rows),
            on_split=lambda past, mask: kept.append((past, mask)),
            feed_last=True,
        )
        captured = [cap.row(r) for r in range(len(rows))]
    done = []
    for row, g in zip(rows, outs, strict=True):
        steps, ans = locate(tok, g.token_ids, parsing.parse_response(tok.decode(g.token_ids)))
        done.append(replace(row, token_ids=g.token_ids, step_end_token=steps, answer_token=ans))
    return outs, captured_table(lm, done, captured, kept[0] if kept else None, ec, schema)


def samples_table(
    tok: Any,
    prompts: Sequence[Mapping[str, Any]],
    enc: Sequence[Sequence[int]],
    enc_nf: Sequence[Sequence[int]],
    generations: Mapping[tuple[int, int], Generation],
) -> pa.Table:
    """The samples table: each generation ((prompt index, sample index) -> Generation)
    parsed, located and scored against its prompt's gold chain, in key order."""
    cols = Columns(tables.SAMPLES)
    for i, s in sorted(generations):
        g, row = generations[(i, s)], prompts[i]
        text = tok.decode(g.token_ids)
        parsed = parsing.parse_response(text)
        step_tok, ans_tok = locate(tok, g.token_ids, parsed)
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
            step_correct=parsing.score_steps(parsed.steps, row["gold_cot"]),
            step_end_token=step_tok,
            answer_token=ans_tok,
            cot_exact=list(parsed.steps) == list(row["gold_cot"]),
        )
    return cols.table()
