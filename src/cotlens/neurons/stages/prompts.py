"""Stage ``neurons_prompts``: word problems x the seven CoT variants as Parquet (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cotlens.io.parquet import Columns, RunMeta, write_table
from cotlens.neurons import tables
from cotlens.neurons.prompts import VARIANTS, ArithConfig, build_prompt, exemplars, generate, load_gsm8k, variant_shots
from cotlens.pipeline.stage import Params, Paths


def arith_config(params: Mapping[str, Any]) -> ArithConfig:
    c = dict(params)
    if "ops" in c:
        c["ops"] = tuple(c["ops"])
    return ArithConfig(**c)


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    ac = arith_config(params)
    problems = load_gsm8k(ac.gsm8k_path, ac.n_problems) if ac.gsm8k_path else generate(ac)
    ex = exemplars(ac)
    cols = Columns(tables.NEURONS_PROMPTS)
    for variant in VARIANTS:
        shots = variant_shots(ex, variant)
        for i, p in enumerate(problems):
            cols.add(
                problem_id=i,
                variant=variant,
                prompt=build_prompt(p.question, shots, variant),
                answer=p.answer,
                n_steps=len(p.steps),
                ops="".join(p.ops),
                source="gsm8k" if ac.gsm8k_path else "generated",
            )
    write_table(cols.table(), outputs["prompts"], RunMeta.of("neurons_prompts", params))
    return len(problems)
