"""Stage ``neurons_prompts``: word problems x the seven CoT variants as Parquet (torch-free)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cotlens.io.parquet import RunMeta, to_table, write_table
from cotlens.neurons import tables
from cotlens.neurons.prompts import VARIANTS, ArithConfig, build_prompt, exemplars, generate, load_gsm8k, variant_shots
from cotlens.pipeline.stage import Params, Paths

PROMPT_KEYS = ("seed", "n_problems", "min_steps", "max_steps", "ops", "n_shots", "gsm8k_path")


def arith_config(params: Mapping[str, Any]) -> ArithConfig:
    c = {k: params[k] for k in PROMPT_KEYS if k in params}
    if "ops" in c:
        c["ops"] = tuple(c["ops"])
    return ArithConfig(**c)


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    ac = arith_config(params)
    problems = load_gsm8k(ac.gsm8k_path, ac.n_problems) if ac.gsm8k_path else generate(ac)
    ex = exemplars(ac)
    cols: dict[str, list[Any]] = {f.name: [] for f in tables.NEURONS_PROMPTS}
    for variant in VARIANTS:
        shots = variant_shots(ex, variant)
        for i, p in enumerate(problems):
            row = {
                "problem_id": i,
                "variant": variant,
                "prompt": build_prompt(p.question, shots, variant),
                "answer": p.answer,
                "n_steps": len(p.steps),
                "ops": "".join(p.ops),
                "source": "gsm8k" if ac.gsm8k_path else "generated",
            }
            for k, v in row.items():
                cols[k].append(v)
    sub = {k: params[k] for k in PROMPT_KEYS if k in params}
    write_table(to_table(cols, tables.NEURONS_PROMPTS), outputs["prompts"], RunMeta.of("neurons_prompts", sub))
    return len(problems)
