"""The cost of Study 1's model stages for ``cotlens plan``: the work each does,
counted from the configuration and the prompts (``cotlens.core.cost``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from cotlens.core.cost import CostInputs, Work, batches, generation, plus, times

KEPT = "pairs kept: ~0.3 of the candidates, at most 3 x per_subtask (the model's correct steps decide)"


def candidate_pairs(st: CostInputs) -> list[tuple[int, int]]:
    """(tokens, first differing position) of each clean/corrupt candidate ``circuits_pairs``
    builds from the gold chains of the pair ontologies' prompts (exact for ``cot: gold``;
    with the model's own CoT, what its correct steps would give), under the model's tokenizer."""
    from cotlens.circuits.pairs import build_pairs, gold_samples

    pc = st.config["circuits"]["pairs"]
    rows = [r for r in st.prompts.rows if r["ontology"] in set(pc["ontologies"])]
    made = build_pairs(st.prompts.tokenizer, rows, gold_samples(rows), int(pc["seed"]), pc["context"])
    return [(len(p.clean_ids), int(p.corrupt_pos)) for p in made]


def patch_work(
    layers: int, heads_per_layer: int, length: float, after: float, pt: Mapping[str, Any]
) -> tuple[Work, Work]:
    """(one full sweep, one attribution screen and top-K replay) of a pair of ``length``
    tokens whose prompts differ from ``after`` positions before the end
    (``circuits.patching``): a head at layer l replays blocks l.. (on average (L+1)/2L of
    the blocks) over the positions from the first difference (all-position patching) or from
    the patched position (per position: the corrupted one and the last ``positions_last``);
    the top-K heads are grouped by layer, one replay per layer they fall in."""
    depth = (layers + 1) / (2 * layers)
    heads, hb = layers * heads_per_layer, int(pt["head_batch"])
    last = int(pt["positions_last"])
    per_pos_positions = after + last * (last + 1) / 2  # the corrupted position's tail, then 1..last
    ctx = length / 2  # as the other stages count it (peak memory reads 2x it as the sequence)
    sweep = Work(
        calls=layers * math.ceil(heads_per_layer / hb) * (2 + last) * depth,
        tokens=heads * depth * (after + per_pos_positions),
        ctx=ctx,
        readouts=heads * (2 + last),
    )
    k = int(pt["top_k"])
    in_layers = layers * (1 - (1 - 1 / layers) ** k)  # distinct layers of k heads spread over the depth
    screen = Work(calls=4, tokens=2 * length, ctx=length / 2, backward=2 * length * int(pt["screen_steps"]), readouts=4)
    topk = Work(calls=in_layers * depth, tokens=k * depth * after, ctx=ctx, readouts=k)
    return sweep, plus(screen, topk)


def stages(st: CostInputs) -> dict[str, Work]:
    """The model work of each of the study's model stages (``cotlens plan``)."""
    c, s, p = st.config["circuits"], st.shape, st.prompts
    n = p.n() * int(c["sample"]["n_samples"])
    from cotlens.circuits.fewshot import question_text

    prompt, nofacts, cot = p.mean("prompt"), p.mean("prompt_nofacts"), p.mean("gold_cot") + 4
    for r in p.rows:  # the question alone (0-shot pairs, probe features)
        r.setdefault("_question", question_text(r["facts"], r["query"]))
    query = p.mean("_question")
    sm = c["sample"]
    npos = 2 + cot / 10  # the last prompt token, each step's end, the answer
    shared = max(0.0, prompt - query)  # the exemplars: run once for the clean and the no-facts sequence
    # the activations are recorded while generating (the last token fed once more); then
    # each no-facts question and CoT after the prefix the generation kept, read out at the positions
    prior = Work(
        calls=batches(n, int(sm["batch_size"])),
        tokens=n * (nofacts - shared + cot + 1),
        ctx=prompt,
        readouts=n * npos,
        loads=0,
    )
    sample = plus(generation(n, prompt, cot, int(sm["max_new_tokens"]), int(sm["batch_size"])), prior)
    # a batch's recorded vectors, every layer at every generated position, until it is written
    width = s.d_model + s.heads * s.head_dim + (s.d_mlp if c["extract"]["mlp"] else 0)
    sample.held = int(sm["batch_size"]) * (int(sm["max_new_tokens"]) + 1) * s.layers * width
    sample.note = "generated length: the gold CoT's"
    lens = Work(readouts=2 * n * npos * s.layers)  # the block outputs and the heads' writes
    probe = Work(calls=batches(n, 8), tokens=n * query, ctx=query / 2, fixed_s=1.0 * s.layers * max(1.0, n / 72))
    plen = (query if c["pairs"]["context"] == "question" else prompt) + cot / 2
    return {
        "circuits_sample": sample,
        "circuits_lens": lens,
        **pair_stages(st, n, plen),
        "circuits_probe": probe,
    }


def pair_stages(st: CostInputs, n: float, plen: float) -> dict[str, Work]:
    """circuits_pairs, patch, heads and sufficiency: the candidates of ``n`` samples (their
    own lengths and first differences where the tokenizer is here, else ``plen`` tokens),
    then the pairs kept."""
    c, s, p = st.config["circuits"], st.shape, st.prompts
    pc = c["pairs"]
    onto = [o for o in pc["ontologies"] if o in c["prompts"]["ontologies"]]
    share = len(onto) / max(1, len(c["prompts"]["ontologies"]))
    shapes = candidate_pairs(st) if p.tokenizer is not None else None
    # corruptible words per sample without the tokenizer (measured: 64 from 24 fictional samples)
    cands = float(len(shapes)) * int(c["sample"]["n_samples"]) if shapes is not None else n * share * 2.7
    # the patch engine's work follows the pairs' own lengths and first differences
    length, after = (
        (plen, plen * 0.3)
        if not shapes
        else (sum(t for t, _ in shapes) / len(shapes), sum(t - d for t, d in shapes) / len(shapes))
    )
    # clean and corrupt prompt of each candidate, at the candidates' own length
    pairs = Work(calls=batches(cands, int(pc["batch_size"])), tokens=2 * cands * length, ctx=length / 2)
    pairs.readouts = 2 * cands
    pairs.note = (
        f"candidates: {len(shapes)} in the gold chains"
        + ("" if pc["cot"] == "gold" else " (an upper bound: the model writes its own; only its correct steps count)")
        if shapes is not None
        else "candidates: ~2.7 per sample of the pair ontologies"
    )
    kept = min(cands * 0.3, 3 * int(pc["per_subtask"]))  # three subtasks (copy, decision, induction)
    pt = c["patch"]
    exact = kept if int(pt["exact_pairs"]) < 0 else min(kept, 3 * int(pt["exact_pairs"]))
    sweep, screened = patch_work(s.layers, s.heads, length, after, pt)
    # the pathways: the question's, the CoT's and both positions patched, a forward each
    pathways = Work(calls=3, tokens=3 * length, ctx=length / 2, readouts=3)
    patch = plus(Work(), times(sweep, exact), times(screened, kept - exact), times(pathways, kept))
    patch.loads = 1
    # one forward of each pair's clean prompt (eager: its attention weights are read), then
    # each head's write read out twice (its DLA and its own logit lens, each with a zero
    # baseline), all heads in one matmul; the vocabulary decoded once to tell content tokens (~5 us a token)
    heads = Work(
        calls=kept,
        tokens=kept * length,
        ctx=length / 2,
        readouts=2 * kept * (s.layers * s.heads + 1),
        fixed_s=5e-6 * s.vocab,
    )
    suff = sufficiency_work(st, kept, length)
    patch.note = heads.note = suff.note = KEPT
    return {"circuits_pairs": pairs, "circuits_patch": patch, "circuits_heads": heads, "circuits_sufficiency": suff}


def sufficiency_work(st: CostInputs, kept: float, length: float) -> Work:
    """The heads' mean outputs over the false-ontology questions, then each of ``kept``
    pairs' circuits (every k, every random draw) as rows of its clean prompt, CIRCUIT_ROWS a
    forward (``circuits.heads.circuit_logits_many``)."""
    from cotlens.circuits.heads import CIRCUIT_ROWS

    sc, s, p = st.config["circuits"]["sufficiency"], st.shape, st.prompts
    heads = s.layers * s.heads
    conds = sum(1 + (int(sc["random_draws"]) if 0 < int(k) < heads else 0) for k in sc["sufficiency_k"])
    false_q = p.n(lambda r: r["ontology"] == "false")
    means = Work(calls=false_q, tokens=false_q * p.mean("_question", lambda r: r["ontology"] == "false"))
    means.ctx = means.tokens / max(1, 2 * false_q)
    per_pair = math.ceil(conds / CIRCUIT_ROWS)
    suff = plus(Work(calls=per_pair * kept, tokens=conds * kept * length, ctx=length / 2, readouts=conds * kept), means)
    suff.loads = 1
    return suff
