"""Study 4 (MoTE, 2025): what the pipeline needs to know of it, as data (``cotlens.studies``
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
