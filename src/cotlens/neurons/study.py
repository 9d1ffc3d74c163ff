"""Study 2 (Rai & Yao, ACL 2024), declared as data for ``cotlens.studies`` (which says what each name means)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

NUMBER = 2
PAPER = "Rai & Yao, ACL 2024: FFN neuron activation as a lens on arithmetic CoT"
TITLE = "Study 2: FFN neurons on arithmetic CoT"
FIGURES: dict[str, tuple[str, ...]] = {
    "neuron_concepts": ("neurons",),
    "neuron_ablation": ("effects",),
    "neuron_activation": ("effects",),
}
PARAMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "neurons_prompts": lambda c: c["neurons"]["prompts"],
    "neurons_discovery": lambda c: c["neurons"]["discovery"],
    "neurons_effects": lambda c: {**c["neurons"]["discovery"], **c["neurons"]["effects"]},
}
MODELS_KEY = "active_models"
