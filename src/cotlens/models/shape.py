"""What a registry model's size is, read without loading it (torch-free): the Snakefile
checks settings against it before any stage runs."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cotlens.models.registry import recipe


def routed_experts(entry: Mapping[str, Any], model_dir: str | Path) -> int | None:
    """The number of (layer, expert) pairs a model routes to: from the recipe of a
    ``train`` entry, else from the config.json of the prepared model directory; None when
    it is not known yet (a hub model not yet prepared) or the model is not an MoE."""
    if entry.get("source") == "train":
        r = recipe(entry)
        return int(r["layers"]) * int(r["experts"])
    man_file = Path(model_dir) / "manifest.json"
    if not man_file.is_file():
        return None
    man = json.loads(man_file.read_text())
    if man.get("source") == "hub":
        return None
    cfg_file = Path(model_dir) / man["path"] / "config.json" if "path" in man else None
    if cfg_file is None or not cfg_file.is_file():
        return None
    cfg = json.loads(cfg_file.read_text())
    cfg = cfg.get("text_config", cfg)
    n = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts")
    if not n:
        return None
    return int(n) * int(cfg["num_hidden_layers"])
