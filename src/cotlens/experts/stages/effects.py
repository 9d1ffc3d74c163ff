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
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from cotlens.core.hooks import router_modules
from cotlens.core.types import SWITCH_MODES, SwitchMode
from cotlens.errors import CotlensError
from cotlens.experts import tables
from cotlens.experts.methods import (
    RowSwitches,
    by_layer,
    check_router,
    forceable,
    n_experts,
    random_experts,
    require_moe,
    top_experts,
    top_k_of,
)
from cotlens.experts.responses import (
    continuation_nll,
    first_int,
    interleave,
    reference_nll,
    refusal_classifier,
    render,
    respond,
    unscramble,
)
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, read_table, write_table
from cotlens.io.shards import Shards
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.gate import gate
from cotlens.pipeline.resume import resume_key
from cotlens.pipeline.stage import Params, Paths, model_meta, refusal, refuse


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    """Refusals are classified as in ``experts_routes``: the rule set, or the same judge."""
    prompts, ftri_path, model_dir, out = (
        inputs["prompts"],
        inputs["ftri"],
        inputs["model"],
        outputs["effects"],
    )
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
    score = np.zeros((max(r["layer"] for r in ft) + 1, max(r["expert"] for r in ft) + 1))
    for r in ft:
        score[r["layer"], r["expert"]] = r["score"]
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
    tok = lm.tokenizer
    routers = router_modules(lm.model, lm.adapter)
    n_exp = n_experts(next(iter(routers.values())))
    slots = {lay: top_k_of(r) for lay, r in routers.items()}

    Cond = tuple[str, SwitchMode | Literal["none"], int, int, list[tuple[int, int]]]
    questions = [r["question"] for r in study + quality]
    pairs = [(r["question"], r["reference"]) for r in refs]
    bs = int(params["batch_size"])

    def measure(chunk: list[Cond]) -> list[pa.Table]:
        """The conditions of ``chunk`` side by side: every batch holds the same prompts once
        per condition, each copy under its own switch (``RowSwitches``)."""
        switches: list[tuple[SwitchMode, dict[int, list[int]]] | None] = []
        labels = []
        for _, mode, _, _, experts in chunk:
            if mode == "on":
                experts = forceable(experts, slots)
            labels.append(" ".join(f"L{lay}E{e}" for lay, e in experts))
            switches.append((mode, by_layer(experts)) if experts and mode != "none" else None)
        g = len(chunk)
        order, rorder = interleave(len(questions), bs, g), interleave(len(pairs), bs, g)
        with RowSwitches(lm.model, lm.adapter, switches) as sw:
            said_all = respond(
                lm,
                [questions[j] for _, j in order],
                {**params, "batch_size": bs * g},
                groups=[c for c, _ in order],
                on_groups=sw.rows,
            )
            nll_all = reference_nll(lm, [pairs[j] for _, j in rorder], bs * g, [c for c, _ in rorder], sw.rows)
        said = unscramble(order, said_all, g, len(questions))
        nlls = unscramble(rorder, nll_all, g, len(pairs))
        # the quality guard: each response's fluency under the model with no switch
        prompt_ids = [tok(render(tok, q))["input_ids"] for q in questions]
        asked = [(p, ids) for c in range(g) for p, (_, ids) in zip(prompt_ids, said[c], strict=True)]
        fluency_all = continuation_nll(lm, asked, bs)
        out = []
        for c, ((condition, mode, k, seed, _), label) in enumerate(zip(chunk, labels, strict=True)):
            fluency = fluency_all[c * len(questions) : (c + 1) * len(questions)]
            out.append(table_of(condition, mode, k, seed, label, said[c], nlls[c], fluency))
        return out

    def table_of(
        condition: str,
        mode: str,
        k: int,
        seed: int,
        label: str,
        said: list[tuple[str, list[int]]],
        nll: list[tuple[float, int]],
        fluency: list[tuple[float, int]],
    ) -> pa.Table:
        cols = Columns(tables.EXPERT_EFFECTS)
        cond = {"condition": condition, "mode": mode, "k": k, "seed": seed, "switched": label}
        for r, (text, ids), (fs, fn) in zip(study + quality, said, fluency, strict=True):
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
        for r, (sc, n) in zip(refs, nll, strict=True):
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
        ppl = math.exp(sum(s for s, _ in nll) / max(1, sum(n for _, n in nll)))
        print(
            f"{condition:8s} {mode:4s} k={k:<3d} seed={seed:<3d} refused {rate:.3f}  ppl {ppl:.2f}  [{label}]",
            flush=True,
        )
        return cols.table()

    # one resumable shard per condition: a rerun after a crash measures only the missing ones
    conditions: list[Cond] = [("baseline", "none", 0, -1, [])]
    for k in params["k"]:
        top = top_experts(score, int(k))
        for mode in SWITCH_MODES:
            conditions.append(("top", mode, int(k), -1, top))
            for seed in range(int(params["random_seeds"])):
                rnd = random_experts(sorted(routers), n_exp, int(k), seed, top)
                conditions.append(("random", mode, int(k), seed, rnd))
    key = resume_key(__name__, params, runtime, prompts, ftri_path, Path(model_dir) / "manifest.json")
    shards = Shards(out, "experts_effects", model_meta("experts_effects", key, lm.manifest, lm.dtype), len(conditions))
    todo = [i for i in range(len(conditions)) if not shards.done(i)]  # the rest: done by an interrupted run
    per = max(1, int(params["batch_rows"]) // bs)  # conditions side by side in one batch
    with Progress(len(todo), "conditions") as prog:
        for s in range(0, len(todo), per):
            chunk = todo[s : s + per]
            for i, t in zip(chunk, measure([conditions[i] for i in chunk]), strict=True):
                shards.write(i, t)
                prog.update(note=" ".join(map(str, conditions[i][:4])))
    print(shards.summary(), flush=True)
    runs = shards.concat()
    write_table(runs, out, model_meta("experts_effects", params, lm.manifest, lm.dtype))
    shards.discard()
    return runs.num_rows
