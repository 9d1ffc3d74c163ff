"""Stage ``circuits_prompts``: the PrOntoQA grid as Parquet (byte-identical for a given config)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cotlens.circuits import fewshot, tables
from cotlens.circuits.prompts import GeneratorConfig, generate
from cotlens.errors import CotlensError
from cotlens.io.parquet import Columns, RunMeta, write_table
from cotlens.pipeline.stage import Params, Paths


def generator_config(params: Mapping[str, Any]) -> GeneratorConfig:
    c = dict(params)
    for k in ("hops", "ontologies", "distractors", "negation"):
        if k in c:
            c[k] = tuple(c[k])
    return GeneratorConfig(**c)


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    gc = generator_config(params)
    cols = Columns(tables.CIRCUITS_PROMPTS)
    for i, (ex, shots) in enumerate(generate(gc)):
        cols.add(
            prompt_id=i,
            ontology=ex.ontology,
            hops=ex.hops,
            distractors=ex.distractors,
            negation=ex.negation,
            entity=ex.entity,
            facts=list(ex.facts),
            query=ex.query,
            label=ex.label,
            gold_cot=list(ex.gold_cot),
            prompt=fewshot.prompt(ex, shots),
            prompt_nofacts=fewshot.prompt(ex, shots, with_facts=False),
        )
    if not cols["prompt_id"]:
        raise CotlensError("the prompt set is empty", "check the prompts section of the config")
    write_table(
        cols.table(),
        outputs["prompts"],
        RunMeta.of("circuits_prompts", params),
    )
    return len(cols["prompt_id"])
