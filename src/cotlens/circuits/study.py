"""Study 1 (Dutta et al., TMLR 2024), declared as data for ``cotlens.studies`` (which says what each name means)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

NUMBER = 1
PAPER = "Dutta et al., TMLR 2024: step-by-step reasoning on fictional ontologies (PrOntoQA)"
TITLE = "Study 1: reasoning circuits (PrOntoQA)"
FIGURES: dict[str, tuple[str, ...]] = {
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
}
PARAMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "circuits_prompts": lambda c: c["circuits"]["prompts"],
    "circuits_sample": lambda c: {**c["circuits"]["sample"], "extract": c["circuits"]["extract"]},
    "circuits_lens": lambda c: c["circuits"]["lens"],
    "circuits_pairs": lambda c: c["circuits"]["pairs"],
    "circuits_patch": lambda c: c["circuits"]["patch"],
    "circuits_heads": lambda c: {},
    "circuits_sufficiency": lambda c: c["circuits"]["sufficiency"],
    "circuits_probe": lambda c: c["circuits"]["probe"],
}
MODELS_KEY = "active_models"
