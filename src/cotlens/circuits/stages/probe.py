"""Stage ``circuits_probe``: a linear relation probe per layer on question word pairs; the
layer picked by grouped cross-validation on the selection prompts, the held-out prompts'
accuracy reported at it, and a control task per layer (cotlens.circuits.probe)."""

from __future__ import annotations

import torch

from cotlens.circuits import fewshot, tables
from cotlens.circuits.probe import control_labels, held_out, probe_layers, relation_examples, token_at_char_end
from cotlens.core.hooks import Capture
from cotlens.io.logs import Progress, progress
from cotlens.io.parquet import Columns, read_table, write_table
from cotlens.models.adapters import get
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.stage import Params, Paths, model_meta


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    prompts = inputs["prompts"]
    lm = load_for_stage(inputs["model"], runtime, threads)
    tok = lm.tokenizer
    feats: list[torch.Tensor] = []  # [L, 2d] per example
    labels: list[int] = []
    groups: list[int] = []
    types: list[tuple[str, str]] = []
    with torch.no_grad():
        for p in progress(read_table(prompts).to_pylist(), unit="prompts", what="features"):
            q = fewshot.question_text(p["facts"], p["query"])
            exs = relation_examples(int(p["prompt_id"]), q, int(params["seed"]))
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
                types.append(e.words)
    test_ids = held_out(groups, float(params["test_fraction"]), int(params["seed"]))
    x = torch.stack(feats)  # [N, L, 2d]
    y = torch.tensor(labels)
    y_control = torch.tensor(control_labels(types, labels, int(params["seed"])))
    te = torch.tensor([g in test_ids for g in groups])
    torch.set_num_threads(1)  # a few hundred examples: one thread fits a probe ~2x faster than two
    with Progress(x.shape[1], "layers", what="probes") as prog:
        scores, best = probe_layers(
            x,
            y,
            y_control,
            groups,
            test_ids,
            int(params["cv_folds"]),
            int(params["seed"]),
            float(params["l2"]),
            prog.update,
        )
    n_sel = int((~te).sum())
    cols = Columns(tables.PROBE)
    for sc in scores:
        lab = y if sc.task == "relation" else y_control
        top = torch.bincount(lab[~te], minlength=3).argmax()
        for split, acc, mask in (("train", sc.train, ~te), ("cv", sc.cv, ~te), ("test", sc.test, te)):
            cols.add(
                layer=sc.layer,
                task=sc.task,
                split=split,
                accuracy=acc,
                majority=float((lab[mask] == top).float().mean()),
                n=n_sel if split != "test" else int(te.sum()),
                selected=sc.layer == best,
            )
    write_table(cols.table(), outputs["probe"], model_meta("circuits_probe", params, lm.manifest, lm.dtype))
    return len(labels)
