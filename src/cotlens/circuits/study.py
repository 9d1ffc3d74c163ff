"""Study 1 (Dutta et al., TMLR 2024): what the pipeline needs to know of it, as data (``cotlens.studies``
finds this file; it imports nothing, so the Snakefile reads it while parsing).

- ``NUMBER``: its place among the studies (the report's order);
- ``PAPER`` and ``TITLE``: the paper, and the report's category;
- ``FIGURES``: figure -> the tables it reads ("prompts" is results/<run>/<study>/prompts.parquet,
  any other name results/<run>/<study>/<model>/<name>.parquet);
- ``PARAMS``: rule -> the part of the config that makes its tables (its ``params.cfg``, hashed
  into their metadata and recomputed by their readers: ``cotlens.pipeline.stageparams``);
- ``MODELS_KEY``: the config key listing the models it runs on.
"""

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
    "circuits_sample": lambda c: c["circuits"]["sample"],
    "circuits_extract": lambda c: c["circuits"]["extract"],
    "circuits_lens": lambda c: c["circuits"]["lens"],
    "circuits_pairs": lambda c: c["circuits"]["pairs"],
    "circuits_patch": lambda c: c["circuits"]["patch"],
    "circuits_heads": lambda c: {},
    "circuits_sufficiency": lambda c: c["circuits"]["sufficiency"],
    "circuits_probe": lambda c: c["circuits"]["probe"],
}
MODELS_KEY = "active_models"
