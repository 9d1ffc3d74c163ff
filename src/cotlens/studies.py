"""The four studies: one name each, used for the config section, the rules file, the
results directory, the stage package and the plotting module, and the one place their
figures are listed (the Snakemake rules, the plotting modules and the tests read it).

Pure Python: the Snakefile imports it while parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

StudyName = Literal["circuits", "neurons", "digits", "experts"]


@dataclass(frozen=True)
class Study:
    name: StudyName
    paper: str
    title: str  # the report's category
    # figure -> the tables it reads: "prompts" is results/<run>/<study>/prompts.parquet,
    # any other name results/<run>/<study>/<model>/<name>.parquet
    figures: dict[str, tuple[str, ...]]
    # the config key listing the models the study runs on
    models_key: str = "active_models"

    def table(self, name: str, model: str, run: str = "default") -> str:
        """The path of one of the study's Parquet tables in run ``run`` (config ``run:``)."""
        if name == "prompts":
            return f"results/{run}/{self.name}/prompts.parquet"
        return f"results/{run}/{self.name}/{model}/{name}.parquet"


STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study(
            "circuits",
            "Dutta et al., TMLR 2024: step-by-step reasoning on fictional ontologies (PrOntoQA)",
            "Study 1: reasoning circuits (PrOntoQA)",
            {
                "accuracy": ("prompts", "samples"),
                "step_accuracy": ("prompts", "samples"),
                "lens_heatmap": ("lens",),
                "patch_heads": ("patching",),
                "patch_positions": ("patching",),
                "attribution": ("patching",),
                # the tested figures also read the answers: the study's precondition (accuracy above chance)
                "sufficiency": ("sufficiency", "pairs", "prompts", "samples"),
                "rift": ("heads", "prompts", "samples"),
                "answer_heads": ("heads", "prompts", "samples"),
                "probe": ("probe", "prompts", "samples"),
                "pathways": ("pathways", "pairs", "prompts", "samples"),
            },
        ),
        Study(
            "neurons",
            "Rai & Yao, ACL 2024: FFN neuron activation as a lens on arithmetic CoT",
            "Study 2: FFN neurons on arithmetic CoT",
            {
                "neuron_concepts": ("neurons",),
                "neuron_ablation": ("effects",),
                "neuron_activation": ("effects",),
            },
        ),
        Study(
            "digits",
            "Gambardella et al., ACL 2024: digit confidence in multiplication",
            "Study 3: digit confidence",
            {
                "digit_confidence": ("confidence",),
                "digit_conditioning": ("confidence",),
                "digit_accuracy": ("confidence",),
            },
        ),
        Study(
            "experts",
            "MoTE, 2025: mixture of tunable experts (expert maps and switching)",
            "Study 4: expert maps and switching (MoE)",
            {
                "expert_map": ("ftri",),
                "expert_switch": ("effects", "prompts"),
                "expert_quality": ("effects",),
            },
            models_key="experts.models",
        ),
    )
}


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
        f"results/{run}/{s}/{model}/figures/{figure}.{ext}"
        for s in config["studies"]
        for model in study_models(config, s)
        for figure in STUDIES[s].figures
        for ext in exts
    ]
