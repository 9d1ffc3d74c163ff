"""k-shot prompt formatting (the Dutta et al. / PrOntoQA instruction format)."""

from __future__ import annotations

from collections.abc import Sequence

from cotlens.circuits.prompts import Example, response_text

INPUT = "### Input:\n{facts} True or false: {query}. Let us think step by step.\n### Response:\n"


def question_text(facts: Sequence[str], query: str) -> str:
    """The test question alone (0-shot), ending at the response marker."""
    return INPUT.format(facts=" ".join(facts), query=query).replace("Input:\n ", "Input:\n")


def question(ex: Example, with_facts: bool = True) -> str:
    return question_text(ex.facts if with_facts else (), ex.query)


def exemplar(ex: Example) -> str:
    return question(ex) + response_text(ex.gold_cot, ex.label) + "\n\n"


def prontoqa_corpus() -> list[str]:
    """The tokenizer corpus of the tiny model: PrOntoQA prompts of 1-5 hops."""
    from cotlens.circuits.prompts import GeneratorConfig, generate

    return [prompt(e, s) for e, s in generate(GeneratorConfig(n_per_cell=2, n_shots=2, hops=(1, 2, 3, 4, 5)))]


def prompt(ex: Example, shots: Sequence[Example], with_facts: bool = True) -> str:
    """k exemplars with their gold CoT, then the test question, ending at the response."""
    return "".join(exemplar(s) for s in shots) + question(ex, with_facts)
