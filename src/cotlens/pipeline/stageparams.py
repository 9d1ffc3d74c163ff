"""The one place that says which part of the config makes each table-writing stage.

Each study declares its rules' parts (``cotlens.<study>.study.PARAMS``). A rule's
``params.cfg`` is ``stage_params(rule, config)`` (the rules call it through
``cfg_of`` in common.smk), and it is what the stage hashes into its tables' metadata. A
stage that reads a table recomputes the same part of the *current* config for the rule
that wrote it (``meta["stage"]``) and refuses a table made with another one
(:func:`cotlens.io.provenance.check_inputs`): a table copied in from another run, or left
by an older configuration, is one error naming both, never a silent mix.

Pure Python: the Snakefile imports it while parsing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from cotlens.studies import STUDIES

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"

Config = Mapping[str, Any]

# rule -> the part of the config that makes its tables (each study's ``PARAMS``)
PARAMS: dict[str, Callable[[Config], Any]] = {r: f for s in STUDIES.values() for r, f in s.params.items()}


@cache
def _schema() -> dict[str, Any]:
    return dict(yaml.safe_load(SCHEMA.read_text()))


def with_defaults(config: Config) -> dict[str, Any]:
    """``config`` with the schema's defaults where a key is absent, as Snakemake's
    ``validate`` fills them (a copy; idempotent). The schema is the one place a default
    lives: a stage reads ``params[key]``, never ``params.get(key, default)``."""

    def fill(schema: Mapping[str, Any], value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out = dict(value)
        props = schema.get("properties", {})
        for key, sub in props.items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = fill(sub, out[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in out:
                if key not in props:
                    out[key] = fill(extra, out[key])
        return out

    return dict(fill(_schema(), config))


def stage_params(rule: str, config: Config) -> Any:
    """The part of ``config`` that makes the tables of ``rule`` (its ``params.cfg``), with
    the schema's defaults filled in."""
    if rule not in PARAMS:
        raise KeyError(f"{rule} writes no table; the table-writing rules are {', '.join(sorted(PARAMS))}")
    return PARAMS[rule](with_defaults(config))
