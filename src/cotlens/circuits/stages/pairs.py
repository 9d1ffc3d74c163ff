"""Stage ``circuits_pairs``: clean/corrupt pairs of every correct CoT step, kept where the model
predicts the word on the clean prompt and the corruption moves its prediction."""

from __future__ import annotations

from typing import Any

import torch

from cotlens.circuits import tables
from cotlens.circuits.pairs import balance, build_pairs, gold_samples
from cotlens.core.batch import logits_at, pad
from cotlens.errors import CotlensError
from cotlens.io.logs import progress
from cotlens.io.parquet import Columns, read_table, write_table
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.stage import Params, Paths, model_meta


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    prompts, samples, out = inputs["prompts"], inputs["samples"], outputs["pairs"]
    lm = load_for_stage(inputs["model"], runtime, threads)
    ptab = read_table(prompts).to_pylist()
    onto = {int(p["prompt_id"]): p["ontology"] for p in ptab}
    stab = read_table(samples).to_pylist()
    wanted = set(params["ontologies"])
    if params["cot"] == "gold":  # the gold chain as the CoT prefix
        stab = gold_samples(ptab)
    stab = [s for s in stab if onto[int(s["prompt_id"])] in wanted]
    cands = list(build_pairs(lm.tokenizer, ptab, stab, int(params["seed"]), str(params["context"])))
    pad_id = int(lm.tokenizer.pad_token_id)
    kept: list[tuple[Any, float, float, float, float]] = []
    bs = int(params["batch_size"])
    with torch.no_grad():
        for b in progress(range(0, len(cands), bs), unit="batches", what="candidate pairs"):
            chunk = cands[b : b + bs]
            seqs = [p.clean_ids for p in chunk] + [p.corrupt_ids for p in chunk]
            ids, mask = pad(seqs, pad_id, lm.device, left=False)
            last = torch.tensor([[len(s) - 1] for s in seqs], device=lm.device)
            logits = logits_at(lm.model, lm.adapter, ids, mask, last)[:, 0].float()
            logp = torch.log_softmax(logits, -1)
            n = len(chunk)
            for i, p in enumerate(chunk):
                lc, lx = logp[i], logp[n + i]
                kl = float((lc.exp() * (lc - lx)).sum())
                right = int(lc.argmax()) == p.clean_tok or not params["require_correct"]
                if not right or kl < float(params["min_kl"]):
                    continue
                ld_c = float(logits[i, p.clean_tok] - logits[i, p.corrupt_tok])
                ld_x = float(logits[n + i, p.clean_tok] - logits[n + i, p.corrupt_tok])
                kept.append((p, float(lc[p.clean_tok].exp()), kl, ld_c, ld_x))
    info = {id(p): rest for p, *rest in kept}
    chosen = balance([p for p, *_ in kept], int(params["per_subtask"]), int(params["seed"]))
    if not chosen:
        raise CotlensError(
            f"no clean/corrupt pair survived ({len(cands)} candidates from {len(stab)} samples)",
            "the model must get some CoT steps right: use more prompts, a stronger model, or lower circuits.pairs.min_kl",
        )
    cols = Columns(tables.PAIRS)
    for pid, p in enumerate(chosen):
        pc, kl, ld_c, ld_x = info[id(p)]
        cols.add(
            pair_id=pid,
            prompt_id=p.prompt_id,
            sample_idx=p.sample_idx,
            ontology=onto[p.prompt_id],
            step=p.step,
            subtask=p.subtask,
            word=p.word,
            word_type=p.word_type,
            replacement=p.replacement,
            corrupted_in=p.corrupted_in,
            clean_ids=list(p.clean_ids),
            corrupt_ids=list(p.corrupt_ids),
            clean_tok=p.clean_tok,
            corrupt_tok=p.corrupt_tok,
            question_len=p.question_len,
            corrupt_pos=p.corrupt_pos,
            p_clean=pc,
            kl_clean_corrupt=kl,
            ld_clean=ld_c,
            ld_corrupt=ld_x,
        )
    meta = model_meta("circuits_pairs", params, lm.manifest, lm.dtype, candidates=len(cands), kept=len(kept))
    write_table(cols.table(), out, meta)
    print(f"pairs: {len(cands)} candidates, {len(kept)} predicted and moved, {len(chosen)} kept", flush=True)
    return len(chosen)
