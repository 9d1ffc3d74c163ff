"""Greedy responses to questions (Study 4), their refusal classification (the rule set
or a judge model) and their likelihood under the model: what the routes and effects
stages share."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import torch

from cotlens.core.judge import Judge
from cotlens.core.sampling import Generation, SampleConfig, generate_all, stop_ids
from cotlens.experts import prompts as moe
from cotlens.experts import tables
from cotlens.experts.methods import RouterCapture
from cotlens.io.parquet import Columns

T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Mapping

    from cotlens.models.loading import Loaded


def render(tok: Any, question: str) -> str:
    """A chat model's own template when it has one, else the plain ``Q: ...\\nA:`` format."""
    if getattr(tok, "chat_template", None):
        return str(
            tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
        )
    return moe.format_prompt(question)


def prompt_ids(tok: Any, questions: Sequence[str]) -> list[list[int]]:
    """Each question rendered (:func:`render`) and tokenized: what :func:`respond` feeds the model."""
    return [list(tok(render(tok, q))["input_ids"]) for q in questions]


def reference_seqs(tok: Any, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) of each (question, reference answer): the answer's tokens
    are those of ``prompt + " " + answer`` after the prompt's own token count."""
    seqs = []
    for q, a in pairs:
        prompt = render(tok, q)
        ids = list(tok(prompt + " " + a)["input_ids"])
        start = len(tok(prompt)["input_ids"])
        seqs.append((ids[:start], ids[start:]))
    return seqs


def respond(
    lm: Loaded,
    prompts: Sequence[list[int]],
    cfg: Mapping[str, Any],
    capture: RouterCapture | None = None,
    after_batch: Callable[[list[list[int]], list[list[int]]], None] | None = None,
    groups: Sequence[int] | None = None,
    on_groups: Callable[[list[int]], None] | None = None,
) -> list[tuple[str, list[int]]]:
    """Greedy responses (text, token ids), stopping at a newline for plain-format models.
    ``prompts``: the questions' :func:`prompt_ids` (a caller that asks the same questions
    under several conditions tokenizes them once). ``after_batch(prompt_ids, response_ids)``
    sees each batch. ``groups``/``on_groups``:
    several conditions in one batch (``generate_batch``)."""
    tok = lm.tokenizer
    sc = SampleConfig(max_new_tokens=int(cfg["max_new_tokens"]), batch_size=int(cfg["batch_size"]))
    plain = not getattr(tok, "chat_template", None)

    def stop(ids: list[int]) -> str | None:
        return "delimiter" if plain and "\n" in tok.decode(ids[-1:]) else None

    def seen(_start: int, ids: list[list[int]], gens: list[Generation]) -> None:
        if after_batch is not None:
            after_batch(ids, [g.token_ids for g in gens])

    gens = generate_all(
        lm,
        [list(p) for p in prompts],
        sc,
        stop,
        on_step=capture.rows if capture is not None else None,
        groups=groups,
        on_groups=on_groups,
        before_batch=(lambda ids: capture.begin(ids, sc.max_new_tokens)) if capture is not None else None,
        after_batch=seen,
    )
    return [(tok.decode(g.token_ids, skip_special_tokens=True), g.token_ids) for g in gens]


def refusal_classifier(judge: Loaded | None, judge_cache: str | Path | None) -> tuple[Callable[[str, str], bool], str]:
    """``(classify(question, response) -> refused, who)``: the rule set, or the judge model
    (its answers cached in ``judge_cache``)."""
    if judge is None:
        return (lambda _q, r: moe.is_refusal(r)), "rules"
    name = f"judge:{judge.manifest.get('name', 'judge')}"
    jd = Judge(judge.model, judge.tokenizer, str(judge.manifest.get("sha256", name)), judge_cache or "judge.jsonl")
    return (lambda q, r: bool(r.strip()) and jd.yes(moe.refusal_question(q, r))), name


Scored = dict[bytes, list[tuple[float, int]]]  # a batch's digest -> its rows' (summed NLL, tokens)


def batch_digest(chunk: Sequence[tuple[Sequence[int], Sequence[int]]]) -> bytes:
    """sha256 of a batch's (prompt, continuation) token ids, in order (each list's length
    first, so no two batches share a byte string)."""
    h = hashlib.sha256()
    for p, c in chunk:
        for ids in (p, c):
            h.update(len(ids).to_bytes(4, "little"))
            h.update(b"".join(int(t).to_bytes(4, "little") for t in ids))
    return h.digest()


def continuation_nll(
    lm: Loaded,
    seqs: Sequence[tuple[list[int], list[int]]],
    batch: int,
    groups: Sequence[int] | None = None,
    on_groups: Callable[[list[int]], None] | None = None,
    memo: Scored | None = None,
) -> list[tuple[float, int]]:
    """Summed NLL and token count of each continuation after its prompt (token ids), under
    the model as it is hooked now (``on_groups`` hears the group of each row of a forward).

    ``memo`` (for an unhooked model only): the scores of every batch already run, by the
    digest of its exact token ids (:func:`batch_digest`); a batch run before is not run again. Its numbers are those of the same
    forward over the same inputs, so they are the same bits."""
    if memo is not None and on_groups is not None:
        raise ValueError("a memo of scores holds for the unhooked model only")
    tok = lm.tokenizer
    _, pad = stop_ids(tok)
    out: list[tuple[float, int]] = []
    for s in range(0, len(seqs), batch):
        chunk = [(list(p), list(c)) for p, c in seqs[s : s + batch]]
        key = batch_digest(chunk) if memo is not None else b""
        if memo is not None and key in memo:
            out += memo[key]
            continue
        first = len(out)
        full = [p + c for p, c in chunk]
        n = max(map(len, full))
        x = torch.full((len(full), n), pad, device=lm.device)
        att = torch.zeros((len(full), n), dtype=torch.long, device=lm.device)
        for i, q in enumerate(full):
            x[i, : len(q)] = torch.tensor(q, device=lm.device)
            att[i, : len(q)] = 1
        if on_groups is not None and groups is not None:
            on_groups(list(groups[s : s + batch]))
        with torch.inference_mode():
            logp = torch.log_softmax(lm.model(input_ids=x, attention_mask=att).logits.float(), -1)
        for i, (p, c) in enumerate(chunk):
            if not c:
                out.append((0.0, 0))
                continue
            tgt = torch.tensor(c, device=lm.device)
            lp = logp[i, len(p) - 1 : len(p) + len(c) - 1].gather(-1, tgt[:, None])
            out.append((float(-lp.sum()), len(c)))
        if memo is not None:
            memo[key] = out[first:]
    return out


def interleave(n: int, batch: int, groups: int) -> list[tuple[int, int]]:
    """(group, item) in the order that puts ``groups`` conditions side by side: batch ``i``
    of ``batch * groups`` rows holds items ``[i * batch, (i + 1) * batch)`` once per group,
    so each condition's rows are padded exactly as in a batch of its own."""
    return [(g, j) for s in range(0, n, batch) for g in range(groups) for j in range(s, min(s + batch, n))]


def unscramble(order: Sequence[tuple[int, int]], values: Sequence[T], groups: int, n: int) -> list[list[T]]:
    """``values`` (in :func:`interleave` ``order``) back to one list per group, in item order."""
    out: list[list[Any]] = [[None] * n for _ in range(groups)]
    for (g, j), v in zip(order, values, strict=True):
        out[g][j] = v
    return out


def first_int(text: str) -> str | None:
    m = re.search(r"-?\d+", text)
    return m.group(0) if m else None


def responses_table(
    study: Sequence[Mapping[str, Any]],
    answers: Sequence[tuple[str, Sequence[int]]],
    prompt_len: Sequence[int],
    classify: Callable[[str, str], bool],
    by: str,
) -> pa.Table:
    """responses.parquet: each study prompt's response (text, token ids), classified
    refused or not by ``classify(question, response)`` (``classified_by`` = ``by``)."""
    cols = Columns(tables.EXPERT_RESPONSES)
    for row, (text, ids), plen in zip(study, answers, prompt_len, strict=True):
        cols.add(
            prompt_id=row["prompt_id"],
            response=text,
            refused=classify(row["question"], text),
            empty=not text.strip(),
            classified_by=by,
            prompt_tokens=plen,
            n_tokens=len(ids),
        )
    return cols.table()
