"""Load a prepared model directory (see ``prepare``) with its tokenizer and adapter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cotlens.errors import CotlensError
from cotlens.models.adapters import Adapter, Dims, adapter_for, dims
from cotlens.models.prepare import check_local_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Loaded:
    model: nn.Module
    tokenizer: Any
    adapter: Adapter
    dims: Dims
    manifest: dict[str, Any]
    device: torch.device
    dtype: str


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    f = Path(model_dir) / "manifest.json"
    if not f.is_file():
        raise CotlensError(f"{model_dir} is not a prepared model (no manifest.json)", "run the prepare_model rule")
    return dict(json.loads(f.read_text()))


def load(model_dir: str | Path, dtype: str = "float32", device: str = "auto", attn: str = "sdpa") -> Loaded:
    """Load model + tokenizer in eval mode. ``attn='eager'`` for exact numerical checks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    man = read_manifest(model_dir)
    if man["source"] == "hub":
        where: str | Path = man["repo"]
        kw: dict[str, Any] = {"revision": man.get("revision", "main")}
    else:
        where = Path(model_dir) / man["path"] if not Path(man["path"]).is_absolute() else Path(man["path"])
        check_local_dir(Path(where))
        kw = {}
    if dtype not in DTYPES:
        raise CotlensError(f"dtype {dtype!r} is not supported", f"use one of {sorted(DTYPES)}")
    dev = pick_device(device)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=DTYPES[dtype], attn_implementation=attn, **kw)
    model.to(dev).eval()
    tok = AutoTokenizer.from_pretrained(where, **kw)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return Loaded(model, tok, adapter_for(model), dims(model), man, dev, dtype)
