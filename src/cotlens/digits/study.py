"""Study 3 (Gambardella et al., ACL 2024), declared as data for ``cotlens.studies`` (which says what each name means)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

NUMBER = 3
PAPER = "Gambardella et al., ACL 2024: digit confidence in multiplication"
TITLE = "Study 3: digit confidence"
FIGURES: dict[str, tuple[str, ...]] = {
    "digit_confidence": ("confidence",),
    "digit_conditioning": ("confidence",),
    "digit_accuracy": ("confidence",),
}
PARAMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "digits_prompts": lambda c: c["digits"]["prompts"],
    "digits_confidence": lambda c: c["digits"]["confidence"],
}
MODELS_KEY = "active_models"
