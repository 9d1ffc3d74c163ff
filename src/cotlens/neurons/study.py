"""Study 2 (Rai & Yao, ACL 2024): what the pipeline needs to know of it, as data (``cotlens.studies``
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
