"""Stage ``experts_ftri`` of Study 4: per contrast (and over all map prompts), each (layer,
expert)'s mean selection frequency in the behaviour class minus that in the other class
(:func:`cotlens.experts.methods.ftri`). Only the study prompts of the ``map`` split enter; the
``eval`` split is held out for ``experts_effects``. By default (as in MoTE) the tokens are
the prompt's and the classes are the prompt sets (eliciting vs control), so the map finds
experts that read the request, not the ones that write the refusal text. Reads Parquet
only; no model."""

from __future__ import annotations

import numpy as np

from cotlens.errors import CotlensError
from cotlens.experts import tables
from cotlens.experts.methods import frequencies, ftri, top_experts
from cotlens.experts.prompts import CONTRASTS
from cotlens.io.parquet import Columns, read_meta, read_table, write_table
from cotlens.pipeline.stage import Params, Paths, model_meta, pass_on


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    """fTRI maps per contrast and over all study prompts."""
    prompts, responses, routes = inputs["prompts"], inputs["responses"], inputs["routes"]
    if pass_on("experts_ftri", inputs, outputs, {"ftri": tables.FTRI}, params):
        return 0
    pr = {r["prompt_id"]: r for r in read_table(prompts).to_pylist()}
    resp = {r["prompt_id"]: r for r in read_table(responses).to_pylist()}
    phases = {"all": ("prompt", "generated"), "prompt": ("prompt",), "generated": ("generated",)}[params["tokens"]]
    rt = read_table(routes, columns=["prompt_id", "phase", "layer", "experts"]).to_pydict()
    ids = sorted(p for p in resp if pr[p]["split"] == "map")  # the held-out eval prompts never enter the map
    index = {p: i for i, p in enumerate(ids)}
    keep = [
        i for i, (ph, p) in enumerate(zip(rt["phase"], rt["prompt_id"], strict=True)) if ph in phases and p in index
    ]
    src = read_meta(routes)
    n_layers, n_exp = int(src["extra"]["n_layers"]), int(src["extra"]["n_experts"])
    freq = frequencies(
        [index[rt["prompt_id"][i]] for i in keep],
        [rt["layer"][i] for i in keep],
        [rt["experts"][i] for i in keep],
        len(ids),
        n_layers,
        n_exp,
    )
    if params["classes"] == "response":
        beh = np.array([bool(resp[p]["refused"]) for p in ids])
    else:
        beh = np.array([bool(pr[p]["elicits"]) for p in ids])
    contrast = np.array([pr[p]["contrast"] for p in ids])
    cols = Columns(tables.FTRI)
    for name in ("all", *CONTRASTS):
        sel = np.ones(len(ids), dtype=bool) if name == "all" else contrast == name
        if not sel.any():
            continue
        b = beh[sel]
        if b.all() or not b.any():
            if name == "all":
                raise CotlensError(
                    f"fTRI needs responses in both classes; {int(b.sum())} of {len(b)} study prompts are in the "
                    f"behaviour class ({params['classes']})",
                    "use experts.ftri.classes: prompt_set, or a model that refuses some prompts and answers others",
                )
            print(f"contrast {name}: one class only ({int(b.sum())}/{len(b)}), skipped", flush=True)
            continue
        score, fb, fo = ftri(freq[sel], b)
        order = {le: r for r, le in enumerate(top_experts(score, score.size))}
        for lay in range(n_layers):
            for e in range(n_exp):
                cols.add(
                    contrast=name,
                    layer=lay,
                    expert=e,
                    score=float(score[lay, e]),
                    freq_behaviour=float(fb[lay, e]),
                    freq_other=float(fo[lay, e]),
                    rank=order[(lay, e)],
                    n_behaviour=int(b.sum()),
                    n_other=int((~b).sum()),
                )
    meta = model_meta(
        "experts_ftri",
        params,
        {"name": src["model"], "revision": src["revision"], "fingerprint": src.get("fingerprint")},
        src["dtype"],
    )
    write_table(cols.table(), outputs["ftri"], meta)
    return len(cols)
