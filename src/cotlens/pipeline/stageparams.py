"""The one place that says which part of the config makes each table-writing stage.

A rule's ``params.cfg`` is ``stage_params(rule, config)`` (the rules call it through
``cfg_of`` in common.smk), and it is what the stage hashes into its tables' metadata. A
stage that reads a table recomputes the same part of the *current* config for the rule
that wrote it (``meta["stage"]``) and refuses a table made with another one
(:func:`cotlens.io.provenance.check_inputs`): a table copied in from another run, or left
by an older configuration, is one error naming both, never a silent mix.

Pure Python: the Snakefile imports it while parsing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Config = Mapping[str, Any]

DIGITS_PROMPT_KEYS = ("seed", "n_digits", "m_digits", "n_per_cell", "n_shots", "template", "direct_template")
EXPERTS_PROMPT_KEYS = ("contrasts", "n_quality", "seed")
EXPERTS_GEN_KEYS = ("max_new_tokens", "batch_size")


def _keys(section: Config, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: section[k] for k in keys if k in section}


def _section(study: str, stage: str) -> Callable[[Config], Any]:
    return lambda c: c[study][stage]


# rule -> the part of the config that makes its tables
PARAMS: dict[str, Callable[[Config], Any]] = {
    **{
        f"circuits_{s}": _section("circuits", s)
        for s in ("prompts", "sample", "extract", "lens", "pairs", "patch", "sufficiency", "probe")
    },
    "circuits_heads": lambda c: {},
    "neurons_prompts": _section("neurons", "prompts"),
    "neurons_discovery": _section("neurons", "discovery"),
    "neurons_effects": lambda c: {**c["neurons"]["discovery"], **c["neurons"]["effects"]},
    "digits_prompts": lambda c: _keys(c["digits"], DIGITS_PROMPT_KEYS),
    "digits_confidence": lambda c: c["digits"],
    "experts_prompts": lambda c: _keys(c["experts"], EXPERTS_PROMPT_KEYS),
    "experts_routes": lambda c: _keys(c["experts"], EXPERTS_GEN_KEYS),
    "experts_ftri": lambda c: _keys(c["experts"], ("tokens", "classes")),
    "experts_effects": lambda c: _keys(c["experts"], (*EXPERTS_GEN_KEYS, "k", "random_seeds", "batch_rows")),
}


def stage_params(rule: str, config: Config) -> Any:
    """The part of ``config`` that makes the tables of ``rule`` (its ``params.cfg``)."""
    if rule not in PARAMS:
        raise KeyError(f"{rule} writes no table; the table-writing rules are {', '.join(sorted(PARAMS))}")
    return PARAMS[rule](config)
