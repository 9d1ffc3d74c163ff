"""Load a prepared model directory (see ``prepare``) with its tokenizer and adapter."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from cotlens.errors import CotlensError
from cotlens.io.fingerprint import dir_content
from cotlens.models.adapters import Adapter, Dims, adapter_for, dims, guard_context
from cotlens.models.gqa import cpu_gqa
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
    """``runtime.device`` as a torch device, refused when this machine lacks it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise CotlensError(f"runtime.device is {device!r}: {e}", "use auto, cpu, cuda or cuda:<index>") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CotlensError(
            f"runtime.device is {device!r}, but torch sees no CUDA device on this machine",
            "use runtime.device: auto (or cpu), or run the stage on a GPU node (workflow/profiles/slurm)",
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise CotlensError(
            f"runtime.device is {device!r}, but this machine has {torch.cuda.device_count()} CUDA device(s)",
            "use runtime.device: cuda (or auto)",
        )
    return dev


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    f = Path(model_dir) / "manifest.json"
    if not f.is_file():
        raise CotlensError(
            f"{model_dir} is not a prepared model (no manifest.json)",
            "run the models_prepare rule (snakemake --forcerun models_prepare)",
        )
    return dict(json.loads(f.read_text()))


def open_model(
    where: str | Path,
    kw: dict[str, Any],
    dtype: str = "float32",
    device: str = "auto",
    attn: str = "sdpa",
    device_map: str | dict[str, Any] | None = None,
) -> tuple[nn.Module, Any, torch.device]:
    """Model (eval mode) and tokenizer from a directory or a hub repo (``kw``: revision).

    ``device_map`` (``auto`` or {module: device}) spreads the model over the devices of a
    node through accelerate; hooks and the patching engine then move tensors to the
    device of the module they touch. Without it the model goes to ``device``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise CotlensError(f"dtype {dtype!r} is not supported", f"use one of {sorted(DTYPES)}")
    cpu_gqa()  # the same bits, without copying the keys/values of grouped heads (models.gqa)
    try:
        extra = {"device_map": device_map} if device_map else {}
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            where, dtype=DTYPES[dtype], attn_implementation=attn, output_loading_info=True, **kw, **extra
        )
        model, info = cast(nn.Module, loaded[0]), cast(dict[str, Any], loaded[1])
        tok = AutoTokenizer.from_pretrained(where, **kw)
    except OSError as e:
        if "revision" not in kw:
            raise CotlensError(
                f"model {where} could not be loaded ({str(e).splitlines()[0]})",
                "check its files: cotlens check-model names what is wrong with a model directory",
            ) from None
        raise CotlensError(
            f"model {where} at revision {kw['revision']!r} could not be loaded ({str(e).splitlines()[0]})",
            f"check models.<name>.repo/revision; offline, pre-fetch it on a machine with access: "
            f"hf download {where} --revision {kw['revision']}",
        ) from None
    check_loaded(where, model, info)
    if device_map:
        dev = next(model.parameters()).device  # inputs go where the embedding is
    else:
        dev = pick_device(device)
        model.to(dev)
    model.eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok, dev


def check_loaded(where: str | Path, model: nn.Module, info: dict[str, Any]) -> None:
    """Every tensor of the model config.json describes came from the files: transformers
    fills missing ones with random values and only logs it (a BERT config beside Llama
    weights loads as a random BERT). Refused, with what is missing and what went unused."""
    missing, unused = sorted(info.get("missing_keys") or []), sorted(info.get("unexpected_keys") or [])
    bad = sorted(info.get("mismatched_keys") or [])
    if not missing and not bad:
        return
    raise CotlensError(
        f"the weights in {where} do not fit the {type(model).__name__} its config.json describes: "
        f"{len(missing)} of its tensors are not in the files (e.g. {', '.join(map(str, missing[:3])) or '-'}), "
        f"{len(bad)} have another shape, {len(unused)} tensors of the files are unused "
        f"(e.g. {', '.join(map(str, unused[:3])) or '-'}); transformers would fill the gaps with random values",
        "use the config.json that came with these weights",
    )


def where_of(model_dir: str | Path, man: dict[str, Any]) -> tuple[str | Path, dict[str, Any]]:
    """Where the weights of a prepared model are, and the from_pretrained keywords."""
    if man["source"] == "hub":
        return man["repo"], {"revision": man.get("commit") or man.get("revision", "main")}
    where = Path(model_dir) / man["path"] if not Path(man["path"]).is_absolute() else Path(man["path"])
    check_local_dir(Path(where))
    if man["source"] == "local" and man.get("files"):  # the user's directory: still what was prepared?
        now, _ = dir_content(where, fresh=True)  # content, not size and mtime: see cotlens.io.fingerprint
        if now != man["fingerprint"]:
            raise CotlensError(
                f"the files of model {man['name']!r} in {where} changed after it was prepared "
                f"({man['fingerprint'][:19]} then, {now[:19]} now)",
                "rerun the workflow: Snakemake prepares the model again and reruns every stage that used it",
            )
    return where, {}


def check_vocab(model: nn.Module, tok: Any, name: str) -> None:
    """Every token id the tokenizer can produce has a row in the embedding."""
    rows = int(cast(Any, model).get_input_embeddings().weight.shape[0])
    if len(tok) > rows:
        raise CotlensError(
            f"the tokenizer of model {name!r} has {len(tok)} tokens, but its embedding has {rows} rows: "
            "token ids past the last row would index out of range",
            "use the tokenizer files that came with these weights",
        )


def load(
    model_dir: str | Path,
    dtype: str = "float32",
    device: str = "auto",
    attn: str = "sdpa",
    device_map: str | dict[str, Any] | None = None,
) -> Loaded:
    """Load model + tokenizer in eval mode. ``attn='eager'`` for exact numerical checks."""
    man = read_manifest(model_dir)
    if not device_map:
        pick_device(device)  # an unavailable device is refused before the weights load
    where, kw = where_of(model_dir, man)
    model, tok, dev = open_model(where, kw, dtype, device, attn, device_map)
    check_vocab(model, tok, str(man.get("name", where)))
    guard_context(model)
    ad = adapter_for(model)
    return Loaded(model, tok, ad, dims(model, ad), man, dev, dtype)


def load_for_stage(model_dir: str | Path, runtime: Mapping[str, Any], threads: int, attn: str | None = None) -> Loaded:
    """What a stage loads: torch's threads set, the prepared model as the config's
    ``runtime`` section says (``attn`` overrides runtime.attn where a stage needs eager
    attention)."""
    torch.set_num_threads(max(1, int(threads)))
    return load(
        model_dir, runtime["dtype"], runtime["device"], attn or runtime.get("attn", "sdpa"), runtime.get("device_map")
    )
