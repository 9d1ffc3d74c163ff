"""Study 3 (Gambardella et al., ACL 2024): what the pipeline needs to know of it, as data (``cotlens.studies``
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
