"""Every dotted config key and every rule name that an error message, a hint or a docstring
cites exists: in the config schema, or as a cotlens module attribute; among the rules of
the workflow. (Hints used to name renamed things: ``run the prepare_model rule``, ``lower
patching.min_kl``, ``circuit.circuits``.)"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import yaml

import cotlens

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
TOP = set(SCHEMA["properties"])
MODULES = {m.name.split(".")[-1] for m in pkgutil.walk_packages(cotlens.__path__, "cotlens.")}
RULES = {
    m[1] for f in (ROOT / "workflow" / "rules").glob("*.smk") for m in re.finditer(r"^rule (\w+):", f.read_text(), re.M)
} | {f"{s}_figure" for s in ("circuits", "neurons", "digits", "experts")}  # named in a loop (figures.smk)
DOTTED = re.compile(r"(?<![\w./<-])([a-z_]+(?:\.(?:[a-z_0-9]+|<name>))+)(?![\w/(-])")
FILE = re.compile(r"\.(py|yaml|yml|json|jsonl|parquet|md|rst|html|png|pdf|tsv|log|smk|txt|safetensors|gguf)$")
RULE_CITES = re.compile(
    r"(?:\brule |--forcerun |-R |--until |--allowed-rules )([a-z]+_[a-z_]+)\b|\bthe ([a-z]+_[a-z_]+) rule\b"
)


def schema_paths(node: dict, at: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    out = {at} if at else set()
    for k, v in (node.get("properties") or {}).items():
        out |= schema_paths(v, (*at, k))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out |= schema_paths(extra, (*at, "<name>"))
    return out


PATHS = schema_paths(SCHEMA)


def is_config_key(parts: tuple[str, ...]) -> bool:
    """A full key path, or the tail of one (``prompts.hops`` inside ``circuits``)."""

    def same(a: str, b: str) -> bool:
        return a == b or b == "<name>"

    return any(
        len(p) >= len(parts) and all(same(a, b) for a, b in zip(parts, p[len(p) - len(parts) :], strict=True))
        for p in PATHS
    )


def is_attribute(parts: tuple[str, ...]) -> bool:
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("cotlens." + ".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def texts() -> list[tuple[str, str]]:
    """(where, text) of every string constant of the library and scripts, and the rules."""
    out = []
    for f in sorted([*(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append((f"{f.relative_to(ROOT)}:{node.lineno}", node.value))
    for f in sorted([ROOT / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]):
        out.append((str(f.relative_to(ROOT)), f.read_text()))
    return out


def test_every_cited_config_key_exists() -> None:
    bad = []
    for where, text in texts():
        for m in DOTTED.finditer(text):
            tok = m[1]
            parts = tuple(tok.split("."))
            if FILE.search(tok) or (parts[0] not in TOP and parts[0] not in MODULES):
                continue
            if not (is_config_key(parts) or is_attribute(parts)):
                bad.append(f"{where}: {tok}")
    assert bad == []


def test_every_cited_rule_exists() -> None:
    assert {"models_prepare", "circuits_sample", "digits_confidence"} <= RULES
    bad = []
    for where, text in texts():
        for m in RULE_CITES.finditer(text):
            name = m[1] or m[2]
            if name not in RULES:
                bad.append(f"{where}: {m[0]}")
    assert bad == []


def test_the_checks_see_a_stale_name() -> None:
    """The two checks above find what they are for (a renamed key, a renamed rule)."""
    assert not is_config_key(("patching", "min_kl")) and not is_attribute(("patching", "min_kl"))
    assert not is_config_key(("circuit", "circuits")) and not is_attribute(("circuit", "circuits"))
    assert is_config_key(("circuits", "pairs", "min_kl")) and is_config_key(("prompts", "hops"))
    assert is_config_key(("models", "<name>", "path")) and is_attribute(("pipeline", "gate", "gate"))
    assert [m[1] or m[2] for m in RULE_CITES.finditer("run the prepare_model rule")] == ["prepare_model"]
