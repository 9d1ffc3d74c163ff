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

from collections.abc import Callable, Mapping
from typing import Any

from cotlens.studies import STUDIES

Config = Mapping[str, Any]

# rule -> the part of the config that makes its tables (each study's ``PARAMS``)
PARAMS: dict[str, Callable[[Config], Any]] = {r: f for s in STUDIES.values() for r, f in s.params.items()}


def stage_params(rule: str, config: Config) -> Any:
    """The part of ``config`` that makes the tables of ``rule`` (its ``params.cfg``)."""
    if rule not in PARAMS:
        raise KeyError(f"{rule} writes no table; the table-writing rules are {', '.join(sorted(PARAMS))}")
    return PARAMS[rule](config)
