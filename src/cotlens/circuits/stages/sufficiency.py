"""Stage ``circuits_sufficiency``: sufficiency of the top-k heads (the rest mean-ablated with their mean
output on false-ontology questions), against several draws of k random heads. By default
each subtask has its own circuit, ranked on its own pairs (Dutta et al.);
``circuits.sufficiency.circuits: pooled`` ranks once over all pairs.

Ranking and evaluation use disjoint pairs (two-fold cross-fitting by prompt: the pairs of
even prompt ids are evaluated with the circuit ranked on the odd ones, and the other way
round), so a circuit is never scored on the pairs that picked it; a fold without pairs of a
subtask borrows the other fold's pooled ranking."""

from __future__ import annotations

import random
from typing import Any

import torch

from cotlens.circuits import fewshot, tables
from cotlens.circuits.heads import circuit_logits_many, cross_fit, head_ranking, mean_head_outputs
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, read_table, write_table
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.stage import Params, Paths, model_meta, refusal, refuse


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    pairs, patching, prompts = inputs["pairs"], inputs["patching"], inputs["prompts"]
    why = refusal(inputs)  # the head ranking comes from patching
    if why:
        refuse(
            "circuits_sufficiency", why, outputs, {"sufficiency": tables.SUFFICIENCY}, params, inputs["model"], runtime
        )
        return 0
    lm = load_for_stage(inputs["model"], runtime, threads)
    d, tok = lm.dims, lm.tokenizer
    false_q = [
        tok(fewshot.question_text(p["facts"], p["query"]))["input_ids"]
        for p in read_table(prompts).to_pylist()
        if p["ontology"] == "false"
    ]
    if not false_q:
        raise CotlensError(
            "circuit sufficiency mean-ablates with false-ontology prompts, and there are none",
            'add "false" to prompts.ontologies',
        )
    means = mean_head_outputs(lm, false_q)
    rows = read_table(pairs).to_pylist()
    per_subtask = params["circuits"] == "subtask"
    fold, ranking = cross_fit(rows, lambda ids: head_ranking(patching, d.n_layers, d.n_heads, ids), per_subtask, pairs)
    all_heads = [(la, h) for la in range(d.n_layers) for h in range(d.n_heads)]
    draws = int(params["random_draws"])
    cols = Columns(tables.SUFFICIENCY)
    ks = sorted({min(int(k), len(all_heads)) for k in params["sufficiency_k"]})
    prog = Progress(sum(len(rows) * (1 + (draws if 0 < k < len(all_heads) else 0)) for k in ks), "circuits")
    plan: list[tuple[int, int, set[Any] | None]] = []  # (k, draw, random set or None: the top-k)
    for k in ks:
        rng = random.Random(f"{params['seed']}|{k}")
        # k = 0 and k = all heads have one possible set: no random draws to make
        plan += [(k, -1, None)] + [
            (k, i, set(rng.sample(all_heads, k))) for i in range(draws if 0 < k < len(all_heads) else 0)
        ]
    # every circuit of one pair in one batch (one row each): the same prompt, no padding
    logits: dict[tuple[int, int, int], torch.Tensor] = {}
    for r in rows:
        keeps = [set(ranking[(r["subtask"], fold[r["pair_id"]])][:k]) if rnd is None else rnd for k, _, rnd in plan]
        got = circuit_logits_many(lm, r["clean_ids"], keeps, means)
        for (k, draw, _), lg in zip(plan, got, strict=True):
            logits[(k, draw, r["pair_id"])] = lg
        prog.update(len(plan), note=f"pair {r['pair_id']}")
    for k, draw, rnd in plan:
        for r in rows:
            lg = logits[(k, draw, r["pair_id"])]
            p = torch.softmax(lg, -1)[r["clean_tok"]]
            cols.add(
                k=k,
                pair_id=r["pair_id"],
                subtask=r["subtask"],
                agree=int(lg.argmax()) == r["clean_tok"],
                p_clean_tok=float(p),
                random=rnd is not None,
                draw=draw,
            )
    print(f"circuits: {len(plan)} per pair ({len(ks)} k, {draws} random draws each)", flush=True)
    write_table(
        cols.table(),
        outputs["sufficiency"],
        model_meta("circuits_sufficiency", params, lm.manifest, lm.dtype),
    )
    return len(cols["k"])
