"""Stage ``circuits_probe``: a linear relation probe per layer on question word pairs, held-out split by question."""

from __future__ import annotations

import random
from typing import Any

import torch

from cotlens import schemas
from cotlens.errors import CotlensError
from cotlens.hooks import Capture
from cotlens.models.adapters import get
from cotlens.models.loading import load_for_stage
from cotlens.parquet import read_table, to_table, write_table
from cotlens.probe import fit_probe, relation_examples, token_at_char_end
from cotlens.prompts import fewshot
from cotlens.stages.common import Params, Paths, model_meta


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    prompts, cfg = inputs["prompts"], params
    lm = load_for_stage(inputs["model"], runtime, threads)
    d, tok = lm.dims, lm.tokenizer
    feats: list[torch.Tensor] = []  # [L, 2d] per example
    labels: list[int] = []
    groups: list[int] = []
    with torch.no_grad():
        for p in read_table(prompts).to_pylist():
            q = fewshot.question_text(p["facts"], p["query"])
            exs = relation_examples(int(p["prompt_id"]), q, int(cfg["seed"]))
            if not exs:
                continue
            enc = tok(q, return_offsets_mapping=True)
            offs = enc["offset_mapping"]
            with Capture(lm.model, lm.adapter, sites=("resid",)) as cap:
                get(lm.model, lm.adapter.base)(input_ids=torch.tensor([enc["input_ids"]], device=lm.device))
            resid = cap.stacked("resid")[0]  # [T, L, d]
            for e in exs:
                ia, ib = token_at_char_end(offs, e.a_char), token_at_char_end(offs, e.b_char)
                feats.append(torch.cat([resid[ia], resid[ib]], dim=-1).float().cpu())
                labels.append(e.label)
                groups.append(e.prompt_id)
    if len(set(groups)) < 2:
        raise CotlensError("relation probing needs questions from at least two prompts", "use more prompts")
    ids = sorted(set(groups))
    random.Random(int(cfg["seed"])).shuffle(ids)
    n_test = max(1, round(float(cfg["test_fraction"]) * len(ids)))
    test_ids = set(ids[:n_test])
    x = torch.stack(feats)  # [N, L, 2d]
    y = torch.tensor(labels)
    te = torch.tensor([g in test_ids for g in groups])
    majority = float((y[~te] == torch.bincount(y[~te]).argmax()).float().mean())
    cols: dict[str, list[Any]] = {f.name: [] for f in schemas.PROBE}
    for layer in range(d.n_layers):
        acc_tr, acc_te = fit_probe(x[~te, layer], y[~te], x[te, layer], y[te], float(cfg["l2"]))
        for split, acc, n in (("train", acc_tr, int((~te).sum())), ("test", acc_te, int(te.sum()))):
            for k, v in (("layer", layer), ("split", split), ("accuracy", acc), ("majority", majority), ("n", n)):
                cols[k].append(v)
    write_table(
        to_table(cols, schemas.PROBE), outputs["probe"], model_meta("circuits_probe", cfg, lm.manifest, lm.dtype)
    )
    return len(labels)
