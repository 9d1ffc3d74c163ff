"""Stage ``neurons_effects`` of Study 2 (Rai & Yao): on the evaluation problems (disjoint
from the discovery ones, :func:`cotlens.neurons.split`), accuracy with the concept neurons
ablated (Gaussian noise on their value vectors, as Rai & Yao; or zero / mean) against
random neurons matched by layer (as many in each layer; several seeds), the same for the
``top_n`` best-ranked candidates of any concept, and accuracy with the concept neurons'
activation for every prompt variant (:func:`cotlens.neurons.effect_conditions`).
Resumable: one shard per condition (``cotlens.shards``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch

from cotlens import schemas
from cotlens.errors import CotlensError
from cotlens.logs import Progress
from cotlens.models.loading import load_for_stage
from cotlens.neurons import (
    ActivationMeter,
    Answer,
    ablate,
    check_ablation,
    concept_neurons,
    effect_conditions,
    random_like,
    solve,
    top_neurons,
    variant_rows,
)
from cotlens.parquet import read_table, to_table, write_table
from cotlens.shards import Shards, resume_key
from cotlens.stages.common import Params, Paths, model_meta, refusal, refuse
from cotlens.stages.gate import gate
from cotlens.types import AblationMode


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    prompts, neurons, model_dir, out, cfg = (
        inputs["prompts"],
        inputs["neurons"],
        inputs["model"],
        outputs["effects"],
        params,
    )
    why = refusal(inputs)  # the discovery stage refused the neuron study
    if why:
        refuse("neurons_effects", why, outputs, {"effects": schemas.NEURON_EFFECTS}, cfg, model_dir, runtime)
        return 0
    table = read_table(prompts).to_pylist()
    ntab = read_table(neurons)
    chosen, means = concept_neurons(ntab)
    n_concept = sum(len(v) for v in chosen.values())
    if n_concept == 0:
        raise CotlensError(
            f"{neurons} labels no concept neuron",
            "raise neurons.discovery.n_candidates or neurons.discovery.top_k, or use a larger model",
        )
    tops = {int(n): top_neurons(ntab, int(n), str(neurons)) for n in cfg.get("top_n", [])}
    lm = load_for_stage(model_dir, runtime, threads)
    tables = {"effects": schemas.NEURON_EFFECTS}
    if gate("neurons_effects", "neuron ablation", check_ablation, lm, outputs, tables, cfg, model_dir, runtime):
        return 0
    means = means.to(lm.device)
    conditions = effect_conditions(cfg, n_concept, list(tops))
    key = resume_key(__name__, cfg, runtime, prompts, neurons, Path(model_dir) / "manifest.json")
    shards = Shards(out, "neurons_effects", model_meta("neurons_effects", key, lm.manifest, lm.dtype), len(conditions))

    def measured(texts: list[str], golds: list[int]) -> tuple[list[Answer], list[tuple[float, float]]]:
        acts: list[tuple[float, float]] = []
        with ActivationMeter(lm.model, lm.adapter, chosen, int(cfg["batch_size"])) as meter:
            answers = solve(
                lm, texts, golds, cfg, on_step=meter.rows, after_batch=lambda b: acts.extend(meter.take(len(b)))
            )
        return answers, acts

    todo = [k for k in range(len(conditions)) if not shards.done(k)]  # the rest: done by an interrupted run
    prog = Progress(len(todo), "conditions")
    for k in todo:
        condition, variant, mode, seed, n_abl = conditions[k]
        ids, texts, golds = variant_rows(table, variant, "eval")
        if condition == "variant":
            answers, acts = measured(texts, golds)
        else:
            if condition == "concept":
                which = chosen
            elif condition == "top":
                which = tops[n_abl]
            else:  # matched by layer to the set it controls (the concept set, or the top-n set)
                like = chosen if n_abl == n_concept else tops[n_abl]
                which = random_like(like, lm.dims, torch.Generator().manual_seed(seed))
            ablation = cast(AblationMode, mode)  # every condition but the variants ablates
            with ablate(lm.model, lm.adapter, which, ablation, means, float(cfg.get("noise_scale", 1.0)), seed + 1):
                answers, acts = measured(texts, golds)
        cols: dict[str, list[Any]] = {f.name: [] for f in schemas.NEURON_EFFECTS}
        for pid, a, (act, level) in zip(ids, answers, acts, strict=True):
            row = {
                "condition": condition,
                "variant": variant,
                "mode": mode,
                "seed": seed,
                "n_ablated": n_abl,
                "problem_id": pid,
                "pred": a.pred,
                "correct": a.correct,
                "concept_act": act,
                "concept_active": level,
                "n_tokens": a.n_tokens,
                "text": a.text,
            }
            for c, v in row.items():
                cols[c].append(v)
        ok = sum(a.correct for a in answers)
        prog.update(note=f"{condition} {variant} {mode} seed {seed}, {n_abl} ablated: {ok}/{len(answers)} correct")
        shards.write(k, to_table(cols, schemas.NEURON_EFFECTS))
    prog.close()
    print(shards.summary(), flush=True)
    runs = shards.concat()
    write_table(runs, out, model_meta("neurons_effects", cfg, lm.manifest, lm.dtype))
    shards.discard()
    return runs.num_rows
