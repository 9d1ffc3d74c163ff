"""The studies: one name each, used for the config section, the rules file, the results
directory and the study's package ``cotlens/<name>/``, whose ``study.py`` declares it (its
paper, figures and the tables each reads, the config part of each rule). The Snakemake
rules, the figure stages and the tests read them here.

Pure Python: the Snakefile imports it while parsing, and each ``study.py`` imports nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotlens.paths import figure_path, table_path


@dataclass(frozen=True)
class Study:
    """One study, as its ``cotlens/<name>/study.py`` declares it (see that module's names)."""

    name: str
    number: int
    paper: str
    title: str  # the report's category
    # figure -> the tables it reads: "prompts" is results/<run>/<study>/prompts.parquet,
    # any other name results/<run>/<study>/<model>/<name>.parquet
    figures: dict[str, tuple[str, ...]]
    # rule -> the part of the config that makes its tables (cotlens.pipeline.stageparams)
    params: Mapping[str, Callable[[Mapping[str, Any]], Any]] = field(default_factory=dict)
    # the config key listing the models the study runs on
    models_key: str = "active_models"

    def table(self, name: str, model: str, run: str = "default") -> str:
        """The path of one of the study's Parquet tables in run ``run`` (config ``run:``)."""
        return table_path(run, self.name, name, model)


HERE = Path(__file__).resolve().parent


def declared(name: str, decl: Any) -> Study:
    """The study that module ``decl`` (a ``cotlens/<name>/study.py``) declares. It imports
    nothing (the Snakefile reads it while parsing) and holds:

    - ``NUMBER``: its place among the studies (the report's order);
    - ``PAPER`` and ``TITLE``: the paper, and the report's category;
    - ``FIGURES``: figure -> the tables it reads ("prompts" is results/<run>/<study>/prompts.parquet,
      any other name results/<run>/<study>/<model>/<name>.parquet);
    - ``PARAMS``: rule -> the part of the config that makes its tables (its ``params.cfg``,
      hashed into their metadata and recomputed by their readers: ``cotlens.pipeline.stageparams``);
      its rules must be named ``<name>_<stage>``;
    - ``MODELS_KEY``: the config key listing the models it runs on.
    """
    wrong = [r for r in decl.PARAMS if not r.startswith(f"{name}_")]
    if wrong:
        raise ValueError(f"cotlens.{name}.study declares rules of another study: {wrong}")
    return Study(name, decl.NUMBER, decl.PAPER, decl.TITLE, dict(decl.FIGURES), dict(decl.PARAMS), decl.MODELS_KEY)


def in_order(found: list[Study]) -> dict[str, Study]:
    """The studies by name, in the order of their numbers (each number once)."""
    numbers = [s.number for s in found]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"two studies share a NUMBER: {sorted((s.number, s.name) for s in found)}")
    return {s.name: s for s in sorted(found, key=lambda s: s.number)}


def find_studies() -> dict[str, Study]:
    """Every package ``cotlens/<name>/`` with a ``study.py``: adding a study adds its
    package, and no list here."""
    return in_order(
        [
            declared(d.parent.name, importlib.import_module(f"cotlens.{d.parent.name}.study"))
            for d in sorted(HERE.glob("*/study.py"))
        ]
    )


STUDIES: dict[str, Study] = find_studies()


# The script groups (scripts/<group>/) that are not studies, and the package of their stages.
STAGE_GROUPS = {"models": "cotlens.models.stages", "compare": "cotlens.pipeline.stages"}


def stage_package(group: str) -> str:
    """The package of a script group's stages: ``cotlens.<study>.stages`` for a study."""
    return STAGE_GROUPS.get(group, f"cotlens.{group}.stages")


def study_models(config: Mapping[str, Any], study: str) -> list[str]:
    """The models a study runs on (experts: its own list of MoE models)."""
    key = STUDIES[study].models_key
    return list(config["experts"]["models"] if key == "experts.models" else config[key])


def figure_paths(config: Mapping[str, Any], exts: tuple[str, ...] = ("png", "pdf", "json", "html")) -> list[str]:
    """Every figure file of every study in the config's ``studies``, for its models, under
    ``results/<run>/`` (what rule ``all`` asks for, and what ``cotlens report`` expects)."""
    run = config["run"]
    return [
        figure_path(run, s, model, figure, ext)
        for s in config["studies"]
        for model in study_models(config, s)
        for figure in STUDIES[s].figures
        for ext in exts
    ]
