"""Stage ``neurons_discovery`` of Study 2 (Rai & Yao): greedy CoT on the ``full``
variant of the discovery problems (:func:`cotlens.neurons.methods.split`; the effects are measured
on the others) with every FFN neuron scored in the same forwards
(:class:`cotlens.neurons.methods.NeuronScorer`); only correctly answered problems count. The
``n_candidates`` most frequent top-k neurons are projected to the vocabulary and labelled
with the concept lexicon (or a judge model), in the direction the neuron writes: a neuron
whose mean activation is negative promotes the tokens of minus its output weight."""

from __future__ import annotations

from pathlib import Path

import torch

from cotlens.core.judge import Judge
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, read_table, write_table
from cotlens.models.checks import refused_by
from cotlens.models.loading import load_for_stage
from cotlens.neurons import tables
from cotlens.neurons.methods import Answer, NeuronScorer, label, project_many, solve, variant_rows
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
    d = lm.dims
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
    order = freq.flatten().argsort(descending=True)[: int(params["n_candidates"])]
    rank = torch.full_like(freq, -1, dtype=torch.long).flatten()
    rank[order] = torch.arange(len(order))
    rank = rank.view_as(freq)
    judge, judged_by = None, None
    if judge_dir is not None:
        jl = load_for_stage(judge_dir, runtime, threads)
        judged_by = f"judge:{jl.manifest.get('name', Path(judge_dir).name)}"
        judge = Judge(jl.model, jl.tokenizer, str(jl.manifest.get("sha256", judged_by)), judge_cache or "judge.jsonl")
    cand = [divmod(int(f), d.d_mlp) for f in order]
    signs = {(la, j): float(mean[la, j]) for la, j in cand}
    projections = project_many(lm.model, lm.adapter, lm.tokenizer, cand, signs=signs)
    # Rai & Yao: neurons of layer >= min_layer, value vectors projected without the final
    # norm (their code), and at least two of the top tokens expressing the concept
    min_layer, min_tokens = int(params["min_layer"]), int(params["min_concept_tokens"])
    raw = params["projection"] == "raw"
    cols = Columns(tables.NEURONS)
    for layer in range(d.n_layers):
        for j in range(d.d_mlp):
            r = int(rank[layer, j])
            proj = projections.get((layer, j))
            concept, lexicon, by = None, None, None
            if proj is not None and layer >= min_layer:
                tokens = proj.without_norm if raw else proj.with_norm
                concept = lexicon = label(tokens, min_tokens=min_tokens)
                by = "lexicon"
                if judge is not None and r < int(params["judge_top"]):
                    concept, by = judge.label(tokens), judged_by
            cols.add(
                layer=layer,
                neuron=j,
                freq=float(freq[layer, j]),
                mean_act=float(mean[layer, j]),
                rank=r,
                top_tokens=proj.with_norm if proj else [],
                top_tokens_raw=proj.without_norm if proj else [],
                concept=concept,
                labelled_by=by,
                lexicon=lexicon,
            )
    meta = model_meta("neurons_discovery", params, lm.manifest, lm.dtype)
    write_table(cols.table(), out, meta)
    print(f"{n_correct}/{len(answers)} correct; tokens scored: {sc.total_tokens:.0f}", flush=True)
    return n_correct
