"""Stage ``digits_confidence``: digit confidence for every problem, conditioned on the correct
higher-order digits and on the model's own (see cotlens.digits.methods)."""

from __future__ import annotations

import time
from itertools import groupby

from cotlens.core.types import DIGIT_SETTINGS
from cotlens.digits import tables
from cotlens.digits.methods import (
    VocabText,
    check_readout_padded,
    confidence_batch,
    position_forward,
)
from cotlens.errors import CotlensError
from cotlens.io.logs import Progress
from cotlens.io.parquet import Columns, read_table, write_table
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
    cols = Columns(tables.DIGITS)
    bs = int(params["batch_size"])
    n_forwards = 0
    t0 = time.perf_counter()
    cells = [list(g) for _, g in groupby(tab, key=lambda r: (r["n"], r["m"]))]
    prog = Progress(sum(-(-len(c) // bs) for c in cells), "batches")
    for cell in cells:
        for s in range(0, len(cell), bs):
            batch = cell[s : s + bs]
            rows, n = confidence_batch(lm, vt, fwd, pad, batch, settings, est, mc, int(params["seed"]))
            n_forwards += n
            for row in rows:
                cols.add(**row)
            prog.update(note=f"{batch[0]['n']}x{batch[0]['m']} digits")
    prog.close()
    dt = time.perf_counter() - t0
    print(f"scored {len(tab)} problems in {n_forwards} batched forwards, {dt:.1f} s: {len(tab) / dt:.2f} problems/s")
    write_table(
        cols.table(),
        outputs["confidence"],
        model_meta("digits_confidence", params, lm.manifest, lm.dtype, estimator=est),
    )
    return len(tab)
