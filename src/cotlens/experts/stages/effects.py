"""Stage ``experts_effects`` of Study 4: refusal rate on the held-out evaluation prompts
(the ``eval`` split, never used by the map), quality-question accuracy and reference
perplexity with no switch, with the top-k fTRI experts switched off / forced on, and with
k random experts (other than those) switched off / on over several seeds. Each response
also gets its fluency (mean NLL per token under the model with no switch), which the
quality guard of the figures reads to tell a refusal from broken text.
The switches are router hooks (:func:`cotlens.experts.methods.switch_experts`). Resumable: one
shard per condition (``cotlens.io.shards``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cotlens.core.hooks import router_modules
from cotlens.errors import CotlensError
from cotlens.experts import tables
from cotlens.experts.methods import check_router, n_experts, require_moe, top_k_of
from cotlens.experts.responses import Scored, first_int, refusal_classifier
from cotlens.experts.switching import Asked, Condition, Measured, conditions, measure, score_map
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, read_table
from cotlens.io.shards import Shards
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.gate import gate
from cotlens.pipeline.resume import resume_key
from cotlens.pipeline.stage import Params, Paths, model_meta, refusal, refuse


def effects_table(
    c: Condition,
    m: Measured,
    study: list[dict[str, Any]],
    quality: list[dict[str, Any]],
    refs: list[dict[str, Any]],
    classify: Callable[[str, str], bool],
) -> pa.Table:
    """One condition's rows: each study and quality response, then each reference answer."""
    cols = Columns(tables.EXPERT_EFFECTS)
    cond = {"condition": c.condition, "mode": c.mode, "k": c.k, "seed": c.seed, "switched": m.switched}
    for r, (text, ids), (fs, fn) in zip(study + quality, m.said, m.fluency, strict=True):
        st = r["set"] == "study"
        cols.add(
            **cond,
            prompt_id=r["prompt_id"],
            set=r["set"],
            refused=classify(r["question"], text) if st else None,
            correct=None if st else first_int(text) == r["reference"],
            nll=None,
            n_tokens=len(ids),
            response=text,
            fluency_nll=fs / fn if fn else None,
        )
    for r, (sc, n) in zip(refs, m.nll, strict=True):
        cols.add(
            **cond,
            prompt_id=r["prompt_id"],
            set="reference",
            refused=None,
            correct=None,
            nll=sc,
            n_tokens=n,
            response="",
            fluency_nll=None,
        )
    rate = np.mean(cols["refused"][: len(study)])
    ppl = math.exp(sum(s for s, _ in m.nll) / max(1, sum(n for _, n in m.nll)))
    print(
        f"{c.condition:8s} {c.mode:4s} k={c.k:<3d} seed={c.seed:<3d} refused {rate:.3f}  ppl {ppl:.2f}  [{m.switched}]",
        flush=True,
    )
    return cols.table()


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    """Refusals are classified as in ``experts_routes``: the rule set, or the same judge."""
    prompts, ftri_path, model_dir, out = inputs["prompts"], inputs["ftri"], inputs["model"], outputs["effects"]
    why = refusal(inputs)  # the routes stage refused the study
    if why:
        refuse("experts_effects", why, outputs, {"effects": tables.EXPERT_EFFECTS}, params, model_dir, runtime)
        return 0
    rows = read_table(prompts).to_pylist()
    study = [r for r in rows if r["set"] == "study" and r["split"] == "eval"]  # held out from the map
    quality = [r for r in rows if r["set"] == "quality"]
    refs = [r for r in rows if r["set"] == "reference"]
    ft = [r for r in read_table(ftri_path).to_pylist() if r["contrast"] == "all"]
    if not ft:
        raise CotlensError(f"{ftri_path} has no 'all' map", "rerun the experts_ftri rule")
    score = score_map(ft)
    if max(map(int, params["k"])) > score.size:  # before the model loads (the Snakefile checks what it can)
        raise CotlensError(
            f"experts.effects.k asks for {max(map(int, params['k']))} experts, but the fTRI map {ftri_path} has "
            f"{score.size} (layers x experts)",
            f"use k values up to {score.size}",
        )
    lm = require_moe(load_for_stage(model_dir, runtime, threads))
    out_schemas = {"effects": tables.EXPERT_EFFECTS}
    if gate("experts_effects", "expert switching", check_router, lm, outputs, out_schemas, params, model_dir, runtime):
        return 0
    judge = load_for_stage(inputs["judge"], runtime, threads) if "judge" in inputs else None
    classify, _ = refusal_classifier(judge, runtime.get("judge_cache"))
    routers = router_modules(lm.model, lm.adapter)
    slots = {lay: top_k_of(r) for lay, r in routers.items()}
    conds = conditions(
        score, params["k"], params["random_seeds"], sorted(routers), n_experts(next(iter(routers.values())))
    )
    questions = [r["question"] for r in study + quality]
    pairs = [(r["question"], r["reference"]) for r in refs]
    asked = Asked.of(lm.tokenizer, questions, pairs)  # once, for every condition
    # one resumable shard per condition: a rerun after a crash measures only the missing ones
    key = resume_key(__name__, params, runtime, prompts, ftri_path, Path(model_dir) / "manifest.json")
    shards = Shards(out, "experts_effects", model_meta("experts_effects", key, lm.manifest, lm.dtype), len(conds))
    todo = shards.todo()  # the rest: finished by an interrupted run
    per = max(1, int(params["batch_rows"]) // int(params["batch_size"]))  # conditions side by side in one batch
    fluency: Scored = {}  # the unswitched model's scores of each batch of responses, by token ids
    with Progress(len(todo), "conditions") as prog:
        for s in range(0, len(todo), per):
            chunk = todo[s : s + per]
            measured = measure(lm, [conds[i] for i in chunk], asked, params, slots, fluency)
            for i, m in zip(chunk, measured, strict=True):
                shards.write(i, effects_table(conds[i], m, study, quality, refs, classify))
                prog.update(note=" ".join(map(str, conds[i][:4])))
    return shards.finish(out, model_meta("experts_effects", params, lm.manifest, lm.dtype))
