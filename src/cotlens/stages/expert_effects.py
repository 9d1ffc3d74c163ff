"""Stage ``expert_effects`` of Study 4: refusal rate on the held-out evaluation prompts
(the ``eval`` split, never used by the map), quality-question accuracy and reference
perplexity with no switch, with the top-k fTRI experts switched off / forced on, and with
k random experts (other than those) switched off / on over several seeds. Each response
also gets its fluency (mean NLL per token under the model with no switch), which the
quality guard of the figures reads to tell a refusal from broken text.
The switches are router hooks (:func:`cotlens.experts.switch_experts`). Resumable: one
shard per condition (``cotlens.shards``)."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from cotlens import schemas
from cotlens.errors import CotlensError
from cotlens.experts import by_layer, forceable, n_experts, random_experts, switch_experts, top_experts, top_k_of
from cotlens.hooks import router_modules
from cotlens.models.loading import Loaded
from cotlens.parquet import read_table, to_table, write_table
from cotlens.shards import Shards, resume_key
from cotlens.stages.common import model_meta, set_threads
from cotlens.stages.expert_routes import load_moe, refusal_classifier, render, respond


def continuation_nll(lm: Loaded, seqs: Sequence[tuple[list[int], list[int]]], batch: int) -> list[tuple[float, int]]:
    """Summed NLL and token count of each continuation after its prompt (token ids), under
    the model as it is hooked now."""
    tok = lm.tokenizer
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    out: list[tuple[float, int]] = []
    for s in range(0, len(seqs), batch):
        chunk = [(list(p), list(c)) for p, c in seqs[s : s + batch]]
        full = [p + c for p, c in chunk]
        n = max(map(len, full))
        x = torch.full((len(full), n), pad, device=lm.device)
        att = torch.zeros((len(full), n), dtype=torch.long, device=lm.device)
        for i, q in enumerate(full):
            x[i, : len(q)] = torch.tensor(q, device=lm.device)
            att[i, : len(q)] = 1
        with torch.inference_mode():
            logp = torch.log_softmax(lm.model(input_ids=x, attention_mask=att).logits.float(), -1)
        for i, (p, c) in enumerate(chunk):
            if not c:
                out.append((0.0, 0))
                continue
            tgt = torch.tensor(c, device=lm.device)
            lp = logp[i, len(p) - 1 : len(p) + len(c) - 1].gather(-1, tgt[:, None])
            out.append((float(-lp.sum()), len(c)))
    return out


def reference_nll(lm: Loaded, pairs: Sequence[tuple[str, str]], batch: int) -> list[tuple[float, int]]:
    """Summed NLL and token count of each reference answer after its rendered question."""
    tok = lm.tokenizer
    seqs = []
    for q, a in pairs:
        prompt = render(tok, q)
        ids = tok(prompt + " " + a)["input_ids"]
        start = len(tok(prompt)["input_ids"])
        seqs.append((ids[:start], ids[start:]))
    return continuation_nll(lm, seqs, batch)


def first_int(text: str) -> str | None:
    m = re.search(r"-?\d+", text)
    return m.group(0) if m else None


def run_effects(
    prompts: str | Path, ftri_path: str | Path, model_dir: str | Path, out: str | Path, cfg: Mapping[str, Any],
    runtime: Mapping[str, Any], threads: int = 1, judge_dir: str | Path | None = None,
    judge_cache: str | Path | None = None,
) -> int:  # fmt: skip
    """Refusals are classified as in ``expert_routes``: the rule set, or the same judge."""
    set_threads(threads)
    rows = read_table(prompts).to_pylist()
    study = [r for r in rows if r["set"] == "study" and r["split"] == "eval"]  # held out from the map
    quality = [r for r in rows if r["set"] == "quality"]
    refs = [r for r in rows if r["set"] == "reference"]
    ft = [r for r in read_table(ftri_path).to_pylist() if r["contrast"] == "all"]
    if not ft:
        raise CotlensError(f"{ftri_path} has no 'all' map", "rerun the ftri rule")
    score = np.zeros((max(r["layer"] for r in ft) + 1, max(r["expert"] for r in ft) + 1))
    for r in ft:
        score[r["layer"], r["expert"]] = r["score"]
    lm = load_moe(model_dir, runtime)
    classify, _ = refusal_classifier(judge_dir, judge_cache, runtime)
    tok = lm.tokenizer
    routers = router_modules(lm.model, lm.adapter)
    n_exp = n_experts(next(iter(routers.values())))
    slots = {lay: top_k_of(r) for lay, r in routers.items()}

    def measure(condition: str, mode: str, k: int, seed: int, experts: list[tuple[int, int]]) -> pa.Table:
        if mode == "on":
            experts = forceable(experts, slots)
        label = " ".join(f"L{lay}E{e}" for lay, e in experts)
        ctx = switch_experts(lm.model, lm.adapter, by_layer(experts), mode) if experts else contextlib.nullcontext()
        with ctx:
            said = respond(lm, [r["question"] for r in study + quality], cfg)
            nll = reference_nll(lm, [(r["question"], r["reference"]) for r in refs], int(cfg["batch_size"]))
        # the quality guard: each response's fluency under the model with no switch
        asked = [(tok(render(tok, r["question"]))["input_ids"], ids) for r, (_, ids) in zip(study + quality, said,
                                                                                          strict=True)]  # fmt: skip
        fluency = continuation_nll(lm, asked, int(cfg["batch_size"]))
        cols: dict[str, list[Any]] = {f.name: [] for f in schemas.EXPERT_RUNS}
        for r, (text, ids), (fs, fn) in zip(study + quality, said, fluency, strict=True):
            st = r["set"] == "study"
            refused = classify(r["question"], text) if st else None
            correct = None if st else first_int(text) == r["reference"]
            vals = (condition, mode, k, seed, label, r["prompt_id"], r["set"], refused, correct, None, len(ids), text,
                    fs / fn if fn else None)  # fmt: skip
            for key, v in zip(cols, vals, strict=True):
                cols[key].append(v)
        for r, (s, n) in zip(refs, nll, strict=True):
            vals = (condition, mode, k, seed, label, r["prompt_id"], "reference", None, None, s, n, "", None)
            for key, v in zip(cols, vals, strict=True):
                cols[key].append(v)
        rate = np.mean(cols["refused"][: len(study)])
        ppl = math.exp(sum(s for s, _ in nll) / max(1, sum(n for _, n in nll)))
        print(f"{condition:8s} {mode:4s} k={k:<3d} seed={seed:<3d} refused {rate:.3f}  ppl {ppl:.2f}  [{label}]",
              flush=True)  # fmt: skip
        return to_table(cols, schemas.EXPERT_RUNS)

    # one resumable shard per condition: a rerun after a crash measures only the missing ones
    conditions: list[tuple[str, str, int, int, list[tuple[int, int]]]] = [("baseline", "none", 0, -1, [])]
    for k in cfg["k"]:
        top = top_experts(score, int(k))
        for mode in ("off", "on"):
            conditions.append(("top", mode, int(k), -1, top))
            for seed in range(int(cfg["random_seeds"])):
                rnd = random_experts(sorted(routers), n_exp, int(k), seed, top)
                conditions.append(("random", mode, int(k), seed, rnd))
    key = resume_key(cfg, runtime, prompts, ftri_path, Path(model_dir) / "manifest.json")
    shards = Shards(out, "expert_effects", model_meta("expert_effects", key, lm.manifest, lm.dtype), len(conditions))
    for i, cond in enumerate(conditions):
        if not shards.done(i):
            shards.write(i, measure(*cond))
    print(shards.summary(), flush=True)
    runs = shards.concat()
    write_table(runs, out, model_meta("expert_effects", cfg, lm.manifest, lm.dtype))
    shards.discard()
    return runs.num_rows
