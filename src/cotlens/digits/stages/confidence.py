"""Stage ``digits_confidence``: digit confidence for every problem, conditioned on the correct
higher-order digits and on the model's own (see cotlens.digits.methods)."""

from __future__ import annotations

import time
from itertools import groupby
from typing import Any

import numpy as np
import torch

from cotlens.core.batch import PrefixCache
from cotlens.core.types import DIGIT_SETTINGS
from cotlens.digits import tables
from cotlens.digits.methods import (
    VocabText,
    align,
    check_readout_padded,
    mc_dropout,
    own_digits,
    position_forward,
    prompt_prefix,
    reader,
    score,
)
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import read_table, to_table, write_table
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.gate import gate
from cotlens.pipeline.stage import Params, Paths, model_meta

# conditioned: the correct higher-order digits are given (teacher forcing);
# unconditioned: the model's own higher-order digits (cotlens.digits.methods.own_digits), the
# paper's baseline, read in the same product sequence; direct: "a * b mod 10 =" (an option).
SETTINGS = ("conditioned", "unconditioned")  # the default
KNOWN = DIGIT_SETTINGS


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    prompts = inputs["prompts"]
    tab = read_table(prompts).to_pylist()
    if not tab:
        raise CotlensError(f"the problem set {prompts} is empty", "check the digits section of the config")
    est = params["estimator"]
    mc = dict(params["mc_dropout"]) if est == "mc_dropout" else {}
    if est == "mc_dropout" and int(mc["samples"]) < 20:
        raise CotlensError(f"digits.confidence.mc_dropout.samples = {mc['samples']}", "use at least 20 dropout passes")
    settings = list(params["settings"])
    bad = [s for s in settings if s not in KNOWN]
    if bad or not settings:
        raise CotlensError(f"digits.confidence.settings = {settings}", f"use some of {list(KNOWN)}")
    lm = load_for_stage(inputs["model"], runtime, threads)
    out_schemas = {"confidence": tables.DIGITS}
    if gate(
        "digits_confidence",
        "digit confidence",
        check_readout_padded,
        lm,
        outputs,
        out_schemas,
        params,
        inputs["model"],
        runtime,
    ):
        return 0
    vt = VocabText.from_tokenizer(lm.tokenizer)
    fwd = position_forward(lm)
    pad = int(lm.tokenizer.pad_token_id)
    cols: dict[str, list[Any]] = {f.name: [] for f in tables.DIGITS}
    bs = int(params["batch_size"])
    n_forwards = 0
    t0 = time.perf_counter()
    cells = [list(g) for _, g in groupby(tab, key=lambda r: (r["n"], r["m"]))]
    prog = Progress(sum(-(-len(c) // bs) for c in cells), "batches")
    for cell in cells:
        for s in range(0, len(cell), bs):
            batch = cell[s : s + bs]
            seqs, places, meta, problem = [], [], [], []
            # each problem's prompt is run once: every setting and every round of own digits
            # reads only its answer tokens after it (self-check readout_padded)
            prefix = [prompt_prefix(*align(lm.tokenizer, vt, r["prompt"], r["answer"])) for r in batch]
            read = reader(fwd, vt, pad, lm.device, PrefixCache(lm.model, lm.adapter, prefix, pad, lm.device))
            own = (
                own_digits(read, lm.tokenizer, vt, [r["prompt"] for r in batch], [r["answer"] for r in batch])
                if "unconditioned" in settings
                else [None] * len(batch)
            )
            for i, (r, mine) in enumerate(zip(batch, own, strict=True)):
                texts = {
                    "conditioned": (r["prompt"], r["answer"]),
                    "unconditioned": (r["prompt"], mine),
                    "direct": (r["direct_prompt"], r["direct_answer"]),
                }
                for setting in settings:
                    ids, pl = align(lm.tokenizer, vt, *texts[setting])
                    seqs.append(ids)
                    places.append(pl)
                    meta.append((r, setting))
                    problem.append(i)  # the paired settings of a problem share their dropout masks
            # the model's own softmax, always: the claims' default estimator, and what MC
            # dropout is checked against on the same items
            plain = read(problem, seqs, places)
            n_forwards += 1
            if est == "mc_dropout":
                draws = []
                for k in range(int(mc["samples"])):
                    with mc_dropout(
                        lm.model, lm.adapter, float(mc["p"]), int(params["seed"]) * 1000 + k, torch.tensor(problem)
                    ):
                        draws.append(score(fwd, vt, seqs, places, pad, lm.device))
                    n_forwards += 1
                dists = [[np.stack([d[i][j] for d in draws]) for j in range(len(places[i]))] for i in range(len(seqs))]
            else:
                dists = [[d[None] for d in row] for row in plain]
            for (r, setting), pl, dl, pn in zip(meta, places, dists, plain, strict=True):
                answer_places = len(pl)
                truth = [int(c) for c in (r["direct_answer"] if setting == "direct" else r["answer"]) if c.isdigit()]
                written = [p.digit for p in pl]  # the digits in the scored sequence
                for place, dist, own_p in zip(pl, dl, pn, strict=True):
                    d = truth[place.index]  # unconditioned: the earlier places hold the model's own digits
                    pc = dist[:, d]
                    ok = written[: place.index] == truth[: place.index]
                    for col, v in (
                        ("problem_id", r["problem_id"]),
                        ("n", r["n"]),
                        ("m", r["m"]),
                        ("setting", setting),
                        ("place", place.index),
                        ("n_places", answer_places),
                        ("digit", d),
                        ("prefix_correct", ok),
                        ("p_correct", float(pc.mean())),
                        ("p_std", float(pc.std())),
                        ("argmax_digit", int(dist.mean(0).argmax())),
                        ("p_plain", float(own_p[d])),
                        ("argmax_plain", int(own_p.argmax())),
                        ("p_max_plain", float(own_p.max())),
                    ):
                        cols[col].append(v)
            prog.update(note=f"{batch[0]['n']}x{batch[0]['m']} digits")
    prog.close()
    dt = time.perf_counter() - t0
    print(f"scored {len(tab)} problems in {n_forwards} batched forwards, {dt:.1f} s: {len(tab) / dt:.2f} problems/s")
    write_table(
        to_table(cols, tables.DIGITS),
        outputs["confidence"],
        model_meta("digits_confidence", params, lm.manifest, lm.dtype, estimator=est),
    )
    return len(tab)
