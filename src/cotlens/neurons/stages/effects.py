"""Stage ``neurons_effects`` of Study 2 (Rai & Yao): on the evaluation problems (disjoint
from the discovery ones, :func:`cotlens.neurons.methods.split`), accuracy with the concept neurons
ablated (Gaussian noise on their value vectors, as Rai & Yao; or zero / mean) against
random neurons matched by layer (as many in each layer; several seeds), the same for the
``top_n`` best-ranked candidates of any concept, and accuracy with the concept neurons'
activation for every prompt variant (:func:`cotlens.neurons.methods.effect_conditions`).
Resumable: one shard per condition (``cotlens.io.shards``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch

from cotlens.core.types import AblationMode
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import read_table, to_table, write_table
from cotlens.io.shards import Shards
from cotlens.models.loading import load_for_stage
from cotlens.neurons import tables
from cotlens.neurons.methods import (
    ActivationMeter,
    Answer,
    Condition,
    RowAblations,
    check_ablation,
    concept_neurons,
    effect_conditions,
    random_like,
    side_by_side,
    solve,
    top_neurons,
    variant_rows,
)
from cotlens.pipeline.gate import gate
from cotlens.pipeline.resume import resume_key
from cotlens.pipeline.stage import Params, Paths, model_meta, refusal, refuse


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    prompts, neurons, model_dir, out = (
        inputs["prompts"],
        inputs["neurons"],
        inputs["model"],
        outputs["effects"],
    )
    why = refusal(inputs)  # the discovery stage refused the neuron study
    if why:
        refuse("neurons_effects", why, outputs, {"effects": tables.NEURON_EFFECTS}, params, model_dir, runtime)
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
    tops = {int(n): top_neurons(ntab, int(n), str(neurons)) for n in params["top_n"]}
    lm = load_for_stage(model_dir, runtime, threads)
    out_schemas = {"effects": tables.NEURON_EFFECTS}
    if gate("neurons_effects", "neuron ablation", check_ablation, lm, outputs, out_schemas, params, model_dir, runtime):
        return 0
    means = means.to(lm.device)
    conditions = effect_conditions(params, n_concept, list(tops))
    key = resume_key(__name__, params, runtime, prompts, neurons, Path(model_dir) / "manifest.json")
    shards = Shards(out, "neurons_effects", model_meta("neurons_effects", key, lm.manifest, lm.dtype), len(conditions))

    def measured(
        texts: list[str], golds: list[int], groups: list[int] | None = None, rows: RowAblations | None = None
    ) -> tuple[list[Answer], list[tuple[float, float]]]:
        acts: list[tuple[float, float]] = []
        bs = len(texts) if groups else int(params["batch_size"])
        with ActivationMeter(lm.model, lm.adapter, chosen, bs) as meter:
            answers = solve(
                lm,
                texts,
                golds,
                {**params, "batch_size": bs},
                on_step=meter.rows,
                after_batch=lambda b: acts.extend(meter.take(len(b))),
                groups=groups,
                on_groups=None if rows is None else rows.rows,
            )
        return answers, acts

    def ablated_set(c: Condition) -> dict[int, list[int]]:
        if c.condition == "concept":
            return chosen
        if c.condition == "top":
            return tops[c.n_ablated]
        # random: matched by layer to the set it controls (the concept set, or the top-n set)
        like = chosen if c.n_ablated == n_concept else tops[c.n_ablated]
        return random_like(like, lm.dims, torch.Generator().manual_seed(c.seed))

    def measure(chunk: list[int]) -> list[tuple[list[Answer], list[tuple[float, float]]]]:
        """The conditions of ``chunk``: a prompt variant alone, or ablations of one variant and
        mode side by side in one batch (one group of rows each, ``RowAblations``)."""
        first = conditions[chunk[0]]
        _, texts, golds = variant_rows(table, first.variant, "eval")
        if first.condition == "variant":
            return [measured(texts, golds)]
        sets = [ablated_set(conditions[k]) for k in chunk]
        seeds = [conditions[k].seed for k in chunk]
        mode = cast(AblationMode, first.mode)  # every condition but the variants ablates
        noise = float(params["noise_scale"])
        groups = [g for g in range(len(chunk)) for _ in texts]
        with RowAblations(lm.model, lm.adapter, sets, mode, means, noise, seeds) as rows:
            answers, acts = measured(texts * len(chunk), golds * len(chunk), groups, rows)
        n = len(texts)
        return [(answers[g * n : (g + 1) * n], acts[g * n : (g + 1) * n]) for g in range(len(chunk))]

    todo = [k for k in range(len(conditions)) if not shards.done(k)]  # the rest: done by an interrupted run
    n_eval = len(variant_rows(table, "full", "eval")[0])
    chunks = side_by_side(conditions, todo, max(1, int(params["batch_rows"]) // max(1, n_eval)))
    prog = Progress(len(todo), "conditions")
    for chunk in chunks:
        for k, (answers, acts) in zip(chunk, measure(chunk), strict=True):
            condition, variant, mode, seed, n_abl = conditions[k]
            ids = variant_rows(table, variant, "eval")[0]
            cols: dict[str, list[Any]] = {f.name: [] for f in tables.NEURON_EFFECTS}
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
            note = f"{condition} {variant} {mode} seed {seed}, {n_abl} ablated: {ok}/{len(answers)} correct"
            prog.update(note=note)
            shards.write(k, to_table(cols, tables.NEURON_EFFECTS))
    prog.close()
    print(shards.summary(), flush=True)
    runs = shards.concat()
    write_table(runs, out, model_meta("neurons_effects", params, lm.manifest, lm.dtype))
    shards.discard()
    return runs.num_rows
