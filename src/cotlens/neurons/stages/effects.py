"""Stage ``neurons_effects`` of Study 2 (Rai & Yao): on the evaluation problems (disjoint
from the discovery ones, :func:`cotlens.neurons.methods.split`), accuracy with the concept neurons
ablated (Gaussian noise on their value vectors, as Rai & Yao; or zero / mean) against
random neurons matched by layer (as many in each layer; several seeds), the same for the
``top_n`` best-ranked candidates of any concept, and accuracy with the concept neurons'
activation for every prompt variant (:func:`cotlens.neurons.methods.effect_conditions`).
Resumable: one shard per condition (``cotlens.io.shards``)."""

from __future__ import annotations

from pathlib import Path

from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, read_table
from cotlens.io.shards import Shards
from cotlens.models.loading import load_for_stage
from cotlens.neurons import tables
from cotlens.neurons.methods import (
    check_ablation,
    concept_neurons,
    effect_conditions,
    measure,
    side_by_side,
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

    todo = shards.todo()  # the rest: finished by an interrupted run
    n_eval = len(variant_rows(table, "full", "eval")[0])
    chunks = side_by_side(conditions, todo, max(1, int(params["batch_rows"]) // max(1, n_eval)))
    prog = Progress(len(todo), "conditions")
    for chunk in chunks:
        measured = measure(lm, [conditions[k] for k in chunk], table, chosen, tops, means, params)
        for k, (answers, acts) in zip(chunk, measured, strict=True):
            c = conditions[k]
            cols = Columns(tables.NEURON_EFFECTS)
            for pid, a, (act, level) in zip(variant_rows(table, c.variant, "eval")[0], answers, acts, strict=True):
                cols.add(
                    condition=c.condition,
                    variant=c.variant,
                    mode=c.mode,
                    seed=c.seed,
                    n_ablated=c.n_ablated,
                    problem_id=pid,
                    pred=a.pred,
                    correct=a.correct,
                    concept_act=act,
                    concept_active=level,
                    n_tokens=a.n_tokens,
                    text=a.text,
                )
            ok = sum(a.correct for a in answers)
            prog.update(
                note=f"{c.condition} {c.variant} {c.mode} seed {c.seed}, {c.n_ablated} ablated: {ok}/{len(answers)} correct"
            )
            shards.write(k, cols.table())
    prog.close()
    return shards.finish(out, model_meta("neurons_effects", params, lm.manifest, lm.dtype))
