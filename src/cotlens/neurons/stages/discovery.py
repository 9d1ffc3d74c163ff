"""Stage ``neurons_discovery`` of Study 2 (Rai & Yao): greedy CoT on the ``full``
variant of the discovery problems (:func:`cotlens.neurons.methods.split`; the effects are measured
on the others) with every FFN neuron scored in the same forwards
(:class:`cotlens.neurons.methods.NeuronScorer`); only correctly answered problems count. The
``n_candidates`` most frequent top-k neurons are projected to the vocabulary and labelled
with the concept lexicon (or a judge model), in the direction the neuron writes: a neuron
whose mean activation is negative promotes the tokens of minus its output weight."""

from __future__ import annotations

from pathlib import Path

from cotlens.core.judge import Judge
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import read_table, write_table
from cotlens.models.checks import refused_by
from cotlens.models.loading import load_for_stage
from cotlens.neurons import tables
from cotlens.neurons.methods import (
    Answer,
    NeuronScorer,
    candidates,
    neurons_table,
    project_many,
    solve,
    variant_rows,
)
from cotlens.pipeline.stage import Params, Paths, model_meta, refuse


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    """With ``inputs["judge"]`` the ``judge_top`` most frequent candidates are labelled by
    that model's multiple-choice answers (cached in ``runtime["judge_cache"]``), the rest by
    the lexicon. ``inputs["checks"]``: the model's check report; refused if its
    decomposition failed."""
    prompts, model_dir, out = inputs["prompts"], inputs["model"], outputs["neurons"]
    judge_dir, judge_cache = inputs.get("judge"), runtime.get("judge_cache")
    _, texts, golds = variant_rows(read_table(prompts).to_pylist(), "full", "discovery")
    if not texts:
        raise CotlensError(f"{prompts} has no 'full' prompts", "check the neurons section of the config")
    why = refused_by(inputs.get("checks"), ["decomposition"], "neuron scoring and vocabulary projection")
    if why:
        refuse("neurons_discovery", why, outputs, {"neurons": tables.NEURONS}, params, model_dir, runtime)
        return 0
    lm = load_for_stage(model_dir, runtime, threads)
    prog = Progress(-(-len(texts) // int(params["batch_size"])), "batches", what="problems")

    def after_batch(b: list[Answer]) -> None:
        sc.commit([i for i, a in enumerate(b) if a.correct])
        prog.update(note=f"{sum(a.correct for a in b)}/{len(b)} correct")

    with prog, NeuronScorer(lm, int(params["top_k"]), int(params["batch_size"])) as sc:
        answers = solve(lm, texts, golds, params, on_step=sc.rows, after_batch=after_batch)
    n_correct = sum(a.correct for a in answers)
    if n_correct == 0:
        raise CotlensError(
            f"{lm.manifest.get('name', model_dir)} answered none of {len(answers)} problems correctly",
            "use fewer steps (neurons.prompts.max_steps), other operators, or a stronger model",
        )
    freq, mean = sc.frequency().cpu(), sc.mean_activation().cpu()
    cand, rank = candidates(freq, int(params["n_candidates"]))
    judge, judged_by = None, None
    if judge_dir is not None:
        jl = load_for_stage(judge_dir, runtime, threads)
        judged_by = f"judge:{jl.manifest.get('name', Path(judge_dir).name)}"
        judge = Judge(jl.model, jl.tokenizer, str(jl.manifest.get("sha256", judged_by)), judge_cache or "judge.jsonl")
    signs = {(la, j): float(mean[la, j]) for la, j in cand}
    projections = project_many(lm.model, lm.adapter, lm.tokenizer, cand, signs=signs)
    table = neurons_table(freq, mean, rank, projections, params, judge.label if judge else None, judged_by)
    meta = model_meta("neurons_discovery", params, lm.manifest, lm.dtype)
    write_table(table, out, meta)
    print(f"{n_correct}/{len(answers)} correct; tokens scored: {sc.total_tokens:.0f}", flush=True)
    return n_correct
