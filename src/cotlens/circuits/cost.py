"""The cost of Study 1's model stages for ``cotlens plan``: the work each does,
counted from the configuration and the prompts (``cotlens.core.cost``)."""

from __future__ import annotations

import math

from cotlens.core.cost import CostInputs, Work, batches, generation, plus, times


def candidate_pairs(st: CostInputs) -> int:
    """The clean/corrupt candidates ``circuits_pairs`` builds from the gold chains of the
    pair ontologies' prompts (exact for ``cot: gold``; with the model's own CoT, the count
    its correct steps would give), under the model's tokenizer."""
    from cotlens.circuits.pairs import build_pairs, gold_samples

    pc = st.config["circuits"]["pairs"]
    rows = [r for r in st.prompts.rows if r["ontology"] in set(pc["ontologies"])]
    return sum(1 for _ in build_pairs(st.prompts.tokenizer, rows, gold_samples(rows), int(pc["seed"]), pc["context"]))


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
    sample = generation(n, prompt, cot, int(sm["max_new_tokens"]), int(sm["batch_size"]))
    sample.note = "generated length: the gold CoT's"
    seq = prompt + cot
    npos = 2 + cot / 10  # the last prompt token, each step's end, the answer
    ex = c["extract"]
    shared = max(0.0, prompt - query)  # the exemplars: run once for the clean and the no-facts sequence
    extract = Work(
        calls=3 * batches(n, int(ex["batch_size"])),
        tokens=n * (seq + nofacts + cot - shared),
        ctx=seq / 2,
        readouts=2 * n * npos,
    )
    lens = Work(readouts=2 * n * npos * s.layers)  # the block outputs and the heads' writes
    pc = c["pairs"]
    onto = [o for o in pc["ontologies"] if o in c["prompts"]["ontologies"]]
    share = len(onto) / max(1, len(c["prompts"]["ontologies"]))
    counted = candidate_pairs(st) if p.tokenizer is not None else None
    # corruptible words per sample without the tokenizer (measured: 64 from 24 fictional samples)
    cands = float(counted) * int(c["sample"]["n_samples"]) if counted is not None else n * share * 2.7
    plen = (query if pc["context"] == "question" else prompt) + cot / 2
    pairs = Work(calls=batches(cands, int(pc["batch_size"])), tokens=2 * cands * plen, ctx=plen / 2)
    pairs.readouts = 2 * cands
    pairs.note = (
        f"candidates: {counted} in the gold chains{'' if pc['cot'] == 'gold' else ' (the model writes its own)'}"
        if counted is not None
        else "candidates: ~2.7 per sample of the pair ontologies"
    )
    kept = min(cands * 0.3, 3 * int(pc["per_subtask"]))  # three subtasks (copy, decision, induction)
    pt = c["patch"]
    heads = s.layers * s.heads
    exact = kept if int(pt["exact_pairs"]) < 0 else min(kept, 3 * int(pt["exact_pairs"]))
    per_pos = int(pt["positions_last"]) + 1
    sweep = Work(  # the engine replays each head batch from the first difference (late), each position to the end
        calls=math.ceil(heads / int(pt["head_batch"])) * (1 + per_pos),
        tokens=heads * plen * 0.15 + per_pos * heads * 3,
        ctx=plen / 2,
        readouts=heads * (1 + per_pos),
    )
    screen = Work(calls=4, tokens=2 * plen, ctx=plen / 2, backward=2 * plen * int(pt["screen_steps"]), readouts=4)
    topk = Work(calls=1, tokens=int(pt["top_k"]) * plen, ctx=plen / 2, readouts=int(pt["top_k"]))
    patch = plus(Work(), times(sweep, exact), times(plus(screen, topk), kept - exact))
    patch.loads, patch.note = 1, "pairs kept: ~0.3 of the candidates, at most 3 x per_subtask"
    # each head's write read out twice (its DLA and its own logit lens), all heads in one matmul
    heads_w = Work(calls=3 * kept, tokens=3 * kept * plen, ctx=plen / 2, readouts=2 * kept * s.layers * s.heads)
    sc = c["sufficiency"]
    conds = sum(1 + (int(sc["random_draws"]) if 0 < int(k) < heads else 0) for k in sc["sufficiency_k"])
    groups = 3 if sc["circuits"] == "subtask" else 1
    suff = Work(calls=conds * groups * 2, tokens=(conds + 2) * kept * plen, ctx=plen / 2, readouts=conds * kept)
    probe = Work(calls=batches(n, 8), tokens=n * query, ctx=query / 2, fixed_s=1.0 * s.layers * max(1.0, n / 72))
    return {
        "circuits_sample": sample,
        "circuits_extract": extract,
        "circuits_lens": lens,
        "circuits_pairs": pairs,
        "circuits_patch": patch,
        "circuits_heads": heads_w,
        "circuits_sufficiency": suff,
        "circuits_probe": probe,
    }
