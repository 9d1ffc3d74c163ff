"""Stage ``digits_prompts``: the multiplication problem set as Parquet (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cotlens.digits import tables
from cotlens.digits.prompts import MultConfig, generate
from cotlens.io.parquet import Columns, RunMeta, write_table
from cotlens.pipeline.stage import Params, Paths


def mult_config(params: Mapping[str, Any]) -> MultConfig:
    c = dict(params)
    for k in ("n_digits", "m_digits"):
        if k in c:
            c[k] = tuple(c[k])
    return MultConfig(**c)


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    cols = Columns(tables.DIGITS_PROMPTS)
    for i, p in enumerate(generate(mult_config(params))):
        cols.add(
            problem_id=i,
            n=p.n,
            m=p.m,
            a=p.a,
            b=p.b,
            product=p.product,
            prompt=p.prompt,
            answer=p.answer,
            direct_prompt=p.direct_prompt,
            direct_answer=p.direct_answer,
        )
    write_table(cols.table(), outputs["prompts"], RunMeta.of("digits_prompts", params))
    return len(cols)
