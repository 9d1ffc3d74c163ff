"""Stage ``circuits_heads``: per-head logit lens (with the kind of token each head's lens reads and
the chance baseline), direct logit attribution and attention to the answer token on the
clean prompts."""

from __future__ import annotations

from cotlens.circuits import tables
from cotlens.circuits.heads import content_tokens, read_heads
from cotlens.io.logs import progress
from cotlens.io.parquet import Columns, read_table, write_table
from cotlens.models.checks import refused_by
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.stage import Params, Paths, model_meta, refuse


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    """``inputs["checks"]``: the model's check report (``check_model``); the stage is
    refused (an empty table saying why) if its decomposition, DLA or attention check failed."""
    pairs, out = inputs["pairs"], outputs["heads"]
    why = refused_by(inputs.get("checks"), ["decomposition", "dla", "attention"], "direct logit attribution")
    if why:
        refuse("circuits_heads", why, outputs, {"heads": tables.HEADS}, params, inputs["model"], runtime)
        return 0
    # eager attention: the answer-writing heads' attention weights are read (one forward per pair)
    lm = load_for_stage(inputs["model"], runtime, threads, attn="eager")
    d = lm.dims
    content = content_tokens(lm.tokenizer, d.vocab)
    cols = Columns(tables.HEADS)
    for r in progress(read_table(pairs).to_pylist(), unit="pairs"):
        rd = read_heads(lm, r["clean_ids"], r["clean_tok"], r["corrupt_tok"])
        present = set(r["clean_ids"])
        # the chance that a content token drawn at random from the vocabulary is in the prompt
        chance = len(present & content) / max(len(content), 1)
        for layer in range(d.n_layers):
            for h in range(d.n_heads):
                top = int(rd.top_token[layer, h])
                kind = "function" if top not in content else ("context" if top in present else "prior")
                cols.add(
                    pair_id=r["pair_id"],
                    layer=layer,
                    head=h,
                    dla=float(rd.dla[layer, h]),
                    dla_answer=float(rd.dla_answer[layer, h]),
                    top_token=top,
                    in_context=top in present,
                    top_kind=kind,
                    context_chance=chance,
                    attn_answer=float(rd.attn_answer[layer, h]),
                )
    write_table(cols.table(), out, model_meta("circuits_heads", params, lm.manifest, lm.dtype))
    return len(cols["pair_id"])
