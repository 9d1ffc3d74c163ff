"""Stages ``neurons`` (discovery) and ``neuron_effects`` (ablation, prompt variants) of Study 2.

``neurons``: greedy CoT on the ``full`` variant with every FFN neuron scored in the same
forwards (:class:`cotlens.neurons.NeuronScorer`); only correctly answered problems
count. The ``n_candidates`` most frequent top-k neurons are projected to the vocabulary
and labelled with the concept lexicon.

``neuron_effects``: accuracy with the concept neurons ablated (Gaussian noise on their
value vectors, as Rai & Yao; or zero / mean) against the
same number of random neurons (all layers, all neurons; several seeds), the same for the
``top_n`` best-ranked candidates of any concept, and accuracy with the concept neurons'
mean activation for every prompt variant. Resumable: one shard per condition
(``cotlens.shards``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch

from cotlens import schemas
from cotlens.checks import require
from cotlens.errors import CotlensError
from cotlens.judge import Judge
from cotlens.models.loading import Loaded, load
from cotlens.neurons import ActivationMeter, NeuronScorer, ablate, label, project_many, random_neurons
from cotlens.parquet import read_table, to_table, write_table
from cotlens.prompts.arith import VARIANTS, is_done, parse_answer
from cotlens.sampling import SampleConfig, generate_batch
from cotlens.shards import Shards, resume_key
from cotlens.stages.common import model_meta, set_threads


class Condition(NamedTuple):
    condition: str  # variant | concept | top | random
    variant: str
    mode: str  # none | noise | zero | mean
    seed: int  # random draw, -1 otherwise
    n_ablated: int


@dataclass(frozen=True)
class Answer:
    text: str
    pred: int | None
    correct: bool
    n_tokens: int


def solve(
    lm: Loaded, prompts: Sequence[str], answers: Sequence[int], cfg: Mapping[str, Any],
    on_step: Callable[[list[int]], None] | None = None,
    after_batch: Callable[[list[Answer]], None] | None = None,
) -> list[Answer]:  # fmt: skip
    """Greedy CoT for each prompt, in batches; ``after_batch`` sees each batch's answers."""
    tok = lm.tokenizer
    sc = SampleConfig(max_new_tokens=int(cfg["max_new_tokens"]), batch_size=int(cfg["batch_size"]))
    eos = {int(tok.eos_token_id)} if tok.eos_token_id is not None else set()
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)

    def stop(ids: list[int]) -> str | None:
        return "answer" if is_done(tok.decode(ids)) else None

    out: list[Answer] = []
    for s in range(0, len(prompts), sc.batch_size):
        ids = [tok(p, add_special_tokens=True)["input_ids"] for p in prompts[s : s + sc.batch_size]]
        gens = generate_batch(lm.model, ids, sc, pad, eos, stop, lm.device, on_step=on_step)
        batch = []
        for g, gold in zip(gens, answers[s : s + sc.batch_size], strict=True):
            text = tok.decode(g.token_ids)
            pred = parse_answer(text)
            batch.append(Answer(text, pred, pred == int(gold), len(g.token_ids)))
        if after_batch is not None:
            after_batch(batch)
        out.extend(batch)
    return out


def _rows(rows: list[dict[str, Any]], variant: str) -> tuple[list[int], list[str], list[int]]:
    t = [r for r in rows if r["variant"] == variant]
    return [r["problem_id"] for r in t], [r["prompt"] for r in t], [r["answer"] for r in t]


def run_discovery(
    prompts: str | Path, model_dir: str | Path, out: str | Path, cfg: Mapping[str, Any],
    runtime: Mapping[str, Any], threads: int = 1, judge_dir: str | Path | None = None,
    judge_cache: str | Path | None = None, checks: str | Path | None = None,
) -> int:  # fmt: skip
    """Discovery; with ``judge_dir`` the ``judge_top`` most frequent candidates are labelled
    by that model's multiple-choice answers (cached in ``judge_cache``), the rest by the
    lexicon. ``checks``: the model's check report; refused if its decomposition failed."""
    set_threads(threads)
    _, texts, golds = _rows(read_table(prompts).to_pylist(), "full")
    if not texts:
        raise CotlensError(f"{prompts} has no 'full' prompts", "check the arith section of the config")
    require(checks, "decomposition", "neuron scoring and vocabulary projection (the neurons stage)")
    lm = load(model_dir, runtime["dtype"], runtime["device"], runtime.get("attn", "sdpa"), runtime.get("device_map"))
    d = lm.dims
    with NeuronScorer(lm.model, lm.adapter, d, int(cfg["top_k"]), int(cfg["batch_size"])) as sc:
        answers = solve(
            lm, texts, golds, cfg, on_step=sc.rows,
            after_batch=lambda b: sc.commit([i for i, a in enumerate(b) if a.correct]),
        )  # fmt: skip
    n_correct = sum(a.correct for a in answers)
    if n_correct == 0:
        raise CotlensError(
            f"{lm.manifest.get('name', model_dir)} answered none of {len(answers)} problems correctly",
            "use fewer steps (arith.max_steps), other operators, or a stronger model",
        )
    freq, mean = sc.frequency().cpu(), sc.mean_activation().cpu()
    order = freq.flatten().argsort(descending=True)[: int(cfg["n_candidates"])]
    rank = torch.full_like(freq, -1, dtype=torch.long).flatten()
    rank[order] = torch.arange(len(order))
    rank = rank.view_as(freq)
    judge, judged_by = None, None
    if judge_dir is not None:
        jl = load(
            judge_dir, runtime["dtype"], runtime["device"], runtime.get("attn", "sdpa"), runtime.get("device_map")
        )
        judged_by = f"judge:{jl.manifest.get('name', Path(judge_dir).name)}"
        judge = Judge(jl.model, jl.tokenizer, str(jl.manifest.get("sha256", judged_by)), judge_cache or "judge.jsonl")
    cand = [divmod(int(f), d.d_mlp) for f in order]
    projections = project_many(lm.model, lm.adapter, lm.tokenizer, cand)
    # Rai & Yao: neurons of layer >= min_layer, value vectors projected without the final
    # norm (their code), and at least two of the top tokens expressing the concept
    min_layer, min_tokens = int(cfg.get("min_layer", 6)), int(cfg.get("min_concept_tokens", 2))
    raw = cfg.get("projection", "raw") == "raw"
    cols: dict[str, list[Any]] = {f.name: [] for f in schemas.NEURONS}
    for layer in range(d.n_layers):
        for j in range(d.d_mlp):
            r = int(rank[layer, j])
            proj = projections.get((layer, j))
            concept, lexicon, by = None, None, None
            if proj is not None and layer >= min_layer:
                tokens = proj.without_norm if raw else proj.with_norm
                concept = lexicon = label(tokens, min_tokens=min_tokens)
                by = "lexicon"
                if judge is not None and r < int(cfg.get("judge_top", 0)):
                    concept, by = judge.label(tokens), judged_by
            row = {"layer": layer, "neuron": j, "freq": float(freq[layer, j]), "mean_act": float(mean[layer, j]),
                   "rank": r, "top_tokens": proj.with_norm if proj else [],
                   "top_tokens_raw": proj.without_norm if proj else [], "concept": concept,
                   "labelled_by": by, "lexicon": lexicon}  # fmt: skip
            for k, v in row.items():
                cols[k].append(v)
    meta = model_meta("neurons", cfg, lm.manifest, lm.dtype)
    write_table(to_table(cols, schemas.NEURONS), out, meta)
    print(f"{n_correct}/{len(answers)} correct; tokens scored: {sc.total_tokens:.0f}", flush=True)
    return n_correct


def concept_neurons(neurons: Any) -> tuple[dict[int, list[int]], Any]:
    """({layer: [neuron]} of the labelled candidates, [L, d_mlp] mean activations) from neurons.parquet."""
    t = neurons.to_pydict()
    n_layers, d_mlp = max(t["layer"]) + 1, max(t["neuron"]) + 1
    means = torch.zeros(n_layers, d_mlp)
    chosen: dict[int, list[int]] = {}
    for layer, j, m, c in zip(t["layer"], t["neuron"], t["mean_act"], t["concept"], strict=True):
        means[layer, j] = m
        if c is not None:
            chosen.setdefault(int(layer), []).append(int(j))
    return chosen, means


def top_neurons(neurons: Any, n: int, source: str = "neurons.parquet") -> dict[int, list[int]]:
    """{layer: [neuron]} of the ``n`` best-ranked candidates (most often in their layer's
    top-k), whatever their concept."""
    t = neurons.to_pydict()
    ranked = sorted((r, layer, j) for layer, j, r in zip(t["layer"], t["neuron"], t["rank"], strict=True) if r >= 0)
    if n > len(ranked):
        raise CotlensError(
            f"effects.top_n asks for the top {n} neurons, but {source} holds {len(ranked)} candidates",
            "lower arith.effects.top_n or raise arith.neurons.n_candidates",
        )
    out: dict[int, list[int]] = {}
    for _, layer, j in ranked[:n]:
        out.setdefault(int(layer), []).append(int(j))
    return out


def effect_conditions(cfg: Mapping[str, Any], n_concept: int, top_n: Sequence[int]) -> list[Condition]:
    """The measurements of ``neuron_effects``, in order, one resumable shard each: every
    variant unablated; then per mode the concept set and its random controls, and per
    top-n the top set and its random controls. A random draw needed twice (a top-n as
    large as the concept set) is measured once."""
    conditions = [Condition("variant", v, "none", -1, 0) for v in VARIANTS if v in cfg["variants"]]
    seeds = range(int(cfg["random_seeds"]))
    for mode in cfg["modes"]:
        conditions += [Condition("concept", "full", mode, -1, n_concept)]
        conditions += [Condition("random", "full", mode, s, n_concept) for s in seeds]
        for n in top_n:
            conditions += [Condition("top", "full", mode, -1, n)] + [
                Condition("random", "full", mode, s, n) for s in seeds
            ]
    return list(dict.fromkeys(conditions))


def run_effects(
    prompts: str | Path, neurons: str | Path, model_dir: str | Path, out: str | Path, cfg: Mapping[str, Any],
    runtime: Mapping[str, Any], threads: int = 1,
) -> int:  # fmt: skip
    set_threads(threads)
    table = read_table(prompts).to_pylist()
    ntab = read_table(neurons)
    chosen, means = concept_neurons(ntab)
    n_concept = sum(len(v) for v in chosen.values())
    if n_concept == 0:
        raise CotlensError(
            f"{neurons} labels no concept neuron", "raise neurons.n_candidates or neurons.top_k, or use a larger model"
        )
    tops = {int(n): top_neurons(ntab, int(n), str(neurons)) for n in cfg.get("top_n", [])}
    lm = load(model_dir, runtime["dtype"], runtime["device"], runtime.get("attn", "sdpa"), runtime.get("device_map"))
    means = means.to(lm.device)
    conditions = effect_conditions(cfg, n_concept, list(tops))
    key = resume_key(cfg, runtime, prompts, neurons, Path(model_dir) / "manifest.json")
    shards = Shards(out, "neuron_effects", model_meta("neuron_effects", key, lm.manifest, lm.dtype), len(conditions))

    def measured(texts: list[str], golds: list[int]) -> tuple[list[Answer], list[tuple[float, float]]]:
        acts: list[tuple[float, float]] = []
        with ActivationMeter(lm.model, lm.adapter, chosen, int(cfg["batch_size"])) as meter:
            answers = solve(
                lm, texts, golds, cfg, on_step=meter.rows, after_batch=lambda b: acts.extend(meter.take(len(b)))
            )
        return answers, acts

    for k, (condition, variant, mode, seed, n_abl) in enumerate(conditions):
        if shards.done(k):
            continue
        ids, texts, golds = _rows(table, variant)
        if condition == "variant":
            answers, acts = measured(texts, golds)
        else:
            if condition == "concept":
                which = chosen
            elif condition == "top":
                which = tops[n_abl]
            else:  # the first n of the seed's permutation: smaller random sets nest in larger ones
                which = random_neurons(lm.dims, n_abl, torch.Generator().manual_seed(seed))
            with ablate(lm.model, lm.adapter, which, mode, means, float(cfg.get("noise_scale", 1.0)), seed + 1):
                answers, acts = measured(texts, golds)
        cols: dict[str, list[Any]] = {f.name: [] for f in schemas.ARITH_RUNS}
        for pid, a, (act, level) in zip(ids, answers, acts, strict=True):
            row = {"condition": condition, "variant": variant, "mode": mode, "seed": seed, "n_ablated": n_abl,
                   "problem_id": pid, "pred": a.pred, "correct": a.correct, "concept_act": act, "concept_active": level,
                   "n_tokens": a.n_tokens, "text": a.text}  # fmt: skip
            for c, v in row.items():
                cols[c].append(v)
        ok = sum(a.correct for a in answers)
        print(f"{condition} {variant} {mode} seed {seed}, {n_abl} ablated: {ok}/{len(answers)}", flush=True)
        shards.write(k, to_table(cols, schemas.ARITH_RUNS))
    print(shards.summary(), flush=True)
    runs = shards.concat()
    write_table(runs, out, model_meta("neuron_effects", cfg, lm.manifest, lm.dtype))
    shards.discard()
    return runs.num_rows
