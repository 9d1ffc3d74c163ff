"""Stage ``experts_prompts`` of Study 4: the held-out contrasting sets, the quality
questions and the reference texts (:mod:`cotlens.experts.prompts`) in one table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cotlens.errors import CotlensError
from cotlens.experts import prompts as moe
from cotlens.experts import tables
from cotlens.io.parquet import Columns, RunMeta, write_table
from cotlens.pipeline.stage import Params, Paths


def prompt_table(params: Mapping[str, Any]) -> Columns:
    cols = Columns(tables.EXPERTS_PROMPTS)

    def add(set_: str, split: str, contrast: str, kind: str, elicits: bool, q: str, ref: str) -> None:
        cols.add(
            prompt_id=len(cols),
            set=set_,
            split=split,
            contrast=contrast,
            kind=kind,
            elicits=elicits,
            question=q,
            reference=ref,
        )

    for p in moe.study_prompts():
        if p.contrast in params["contrasts"]:
            add("study", p.split, p.contrast, p.kind, p.elicits, p.question, "")
    for q, a in moe.quality_questions(int(params["n_quality"]), int(params["seed"])):
        add("quality", "", "", "sum", False, q, a)
    for q, a in moe.reference_texts():
        add("reference", "", "", "text", False, q, a)
    return cols


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    cols = prompt_table(params)
    if not any(s == "study" for s in cols["set"]):
        raise CotlensError("experts.prompts.contrasts selects no study prompt", f"use some of {list(moe.CONTRASTS)}")
    write_table(cols.table(), outputs["prompts"], RunMeta.of("experts_prompts", params))
    return len(cols)
