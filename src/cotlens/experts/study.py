"""Study 4 (MoTE, 2025), declared as data for ``cotlens.studies`` (which says what each name means)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

NUMBER = 4
PAPER = "MoTE, 2025: mixture of tunable experts (expert maps and switching)"
TITLE = "Study 4: expert maps and switching (MoE)"
FIGURES: dict[str, tuple[str, ...]] = {
    "expert_map": ("ftri",),
    "expert_switch": ("effects", "prompts"),
    "expert_quality": ("effects",),
}
PARAMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "experts_prompts": lambda c: c["experts"]["prompts"],
    "experts_routes": lambda c: c["experts"]["generation"],
    "experts_ftri": lambda c: c["experts"]["ftri"],
    "experts_effects": lambda c: {**c["experts"]["generation"], **c["experts"]["effects"]},
}
MODELS_KEY = "experts.models"
