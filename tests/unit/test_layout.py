"""One shape for every study: names, the stage contract, the figure registry, and the
configurations validated against the schema."""

from __future__ import annotations

import copy
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from snakemake.utils import validate

from cotlens.studies import STAGE_GROUPS, STUDIES, stage_package

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")
PKG = ROOT / "src" / "cotlens"


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Snakemake's --configfile overlay: nested mappings merge, other values replace."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_one_name_per_study_everywhere() -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    assert set(schema["properties"]["studies"]["items"]["enum"]) == set(STUDIES) == set(default["studies"])
    for name in STUDIES:
        assert name in default and name in schema["properties"], name  # the config section
        assert (ROOT / "workflow" / "rules" / f"{name}.smk").is_file()  # the rules
        assert (PKG / name / "stages" / "__init__.py").is_file() and (
            ROOT / "scripts" / name
        ).is_dir()  # stages, scripts
        assert (PKG / name / "figures.py").is_file()  # figures
        assert (PKG / name / "tables.py").is_file()  # its Parquet schemas
        assert (PKG / name / "cost.py").is_file()  # its stages' work, for cotlens plan
        assert (ROOT / "workflow" / "report" / f"{name}.rst").is_file()  # the report caption


def test_each_study_declares_its_own_tables_and_every_table_a_figure_reads() -> None:
    from cotlens.io import schemas

    known = schemas.tables()
    for name, study in STUDIES.items():
        own = importlib.import_module(f"cotlens.{name}.tables").TABLES
        assert own and all(k.startswith(f"{name}/") for k in own), name
        read = {t for tabs in study.figures.values() for t in tabs}
        assert {f"{name}/{t}" for t in read} <= set(known), name  # every table a figure reads is checked on read
    assert len(known) == sum(len(importlib.import_module(f"cotlens.{n}.tables").TABLES) for n in STUDIES)


def test_a_study_declaring_another_studys_table_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from cotlens.digits import tables as digits_tables
    from cotlens.io import schemas

    schemas.tables.cache_clear()
    monkeypatch.setitem(digits_tables.TABLES, "circuits/pairs", digits_tables.TABLES["digits/prompts"])
    try:
        with pytest.raises(ValueError, match="cotlens.digits.tables declares tables of another study"):
            schemas.tables()
    finally:
        schemas.tables.cache_clear()


def test_each_study_declares_itself_as_data_and_is_found() -> None:
    import ast
    from types import SimpleNamespace

    from cotlens.studies import declared, in_order

    assert list(STUDIES)[:4] == ["circuits", "neurons", "digits", "experts"]  # by NUMBER: the report's order
    for name in STUDIES:
        tree = ast.parse((PKG / name / "study.py").read_text())
        imported = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        # the Snakefile reads it while parsing: only the standard library's typing names
        assert all(
            isinstance(n, ast.ImportFrom) and n.module in ("__future__", "collections.abc", "typing") for n in imported
        )
    mod = importlib.import_module("cotlens.digits.study")
    bad = SimpleNamespace(**{k: getattr(mod, k) for k in ("NUMBER", "PAPER", "TITLE", "FIGURES", "MODELS_KEY")})
    bad.PARAMS = {"circuits_sample": lambda c: {}}
    with pytest.raises(ValueError, match="cotlens.digits.study declares rules of another study"):
        declared("digits", bad)
    with pytest.raises(ValueError, match="two studies share a NUMBER"):
        in_order([STUDIES["digits"], declared("foo", SimpleNamespace(**{**vars(bad), "PARAMS": {}}))])


def test_each_study_costs_only_its_own_rules() -> None:
    for name, study in STUDIES.items():
        stages = importlib.import_module(f"cotlens.{name}.cost").stages
        assert list(inspect.signature(stages).parameters) == ["st"], name
        src = inspect.getsource(stages)
        costed = set(re.findall(rf'"({name}_[a-z]+)"', src))
        assert costed and costed <= set(study.params), (name, costed - set(study.params))


def undescribed(node: dict[str, Any], path: str = "") -> list[str]:
    """The schema's keys without a description (a ``$ref`` carries its own)."""
    out = []
    for key, sub in node.get("properties", {}).items():
        where = f"{path}.{key}" if path else key
        if isinstance(sub, dict):
            if "description" not in sub and "$ref" not in sub:
                out.append(where)
            out += undescribed(sub, where)
            for inner, mark in (("additionalProperties", ".*"), ("items", "[]")):
                if isinstance(sub.get(inner), dict):
                    out += undescribed(sub[inner], where + mark)
    return out


def test_every_config_key_is_described_in_the_schema() -> None:
    schema = yaml.safe_load(Path(SCHEMA).read_text())
    assert undescribed(schema) == []
    assert undescribed({"properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}}}) == [
        "a",
        "a.b",
    ]


@pytest.mark.parametrize("overlay", [None, "config/paper.yaml", "config/qwen-neurons.yaml"])
def test_the_schema_defaults_are_filled_as_snakemake_fills_them(overlay: str | None) -> None:
    from cotlens.pipeline.stageparams import with_defaults

    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    if overlay:
        raw = merged(raw, yaml.safe_load((ROOT / overlay).read_text()))
    validated = copy.deepcopy(raw)
    validate(validated, SCHEMA)  # set_default=True
    assert with_defaults(raw) == validated
    assert with_defaults(with_defaults(raw)) == with_defaults(raw)


def test_defaults_live_in_the_schema_only() -> None:
    """No stage or cost model reads a config key with a default of its own, and the
    dataclasses the config feeds agree with the schema wherever it has a default."""
    import dataclasses

    from cotlens.circuits.extract import ExtractConfig
    from cotlens.circuits.prompts import GeneratorConfig
    from cotlens.core.sampling import SampleConfig

    own = re.compile(r"(params|\bc|\bpc|\bsc|\be|cfg)\.get\(\"\w+\", ")
    offenders = [
        f"{p.relative_to(PKG)}:{i}"
        for p in [*PKG.glob("*/stages/*.py"), *PKG.glob("*/cost.py")]
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if own.search(line)
    ]
    assert offenders == []
    props = yaml.safe_load(Path(SCHEMA).read_text())["properties"]["circuits"]["properties"]
    for cls, section in ((SampleConfig, "sample"), (ExtractConfig, "extract"), (GeneratorConfig, "prompts")):
        for f in dataclasses.fields(cls):
            sub = props[section]["properties"].get(f.name, {})
            if "default" in sub:
                want = sub["default"]
                got = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
                assert (list(got) if isinstance(got, tuple) else got) == want, (cls.__name__, f.name)


def test_analysis_computes_and_figures_draw() -> None:
    """A study's numbers and verdicts are computed in its analysis.py, which draws nothing;
    its figures.py draws them (a public function there that does not draw belongs in analysis)."""
    import ast

    for name in STUDIES:
        tree = ast.parse((PKG / name / "analysis.py").read_text())
        mods = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in mods if m.split(".")[0] in ("matplotlib", "seaborn") or m == "cotlens.io.figures"}, name
        src = (PKG / name / "figures.py").read_text()
        for fn in ast.parse(src).body:
            if isinstance(fn, ast.FunctionDef) and not fn.name.startswith("_"):
                body = ast.get_source_segment(src, fn) or ""
                assert re.search(r"\bplt\.|\bax\b|\bsns\.|\bsave\(|\bfig\b", body), (name, fn.name)


def test_result_paths_are_built_and_parsed_in_one_place() -> None:
    from cotlens import paths
    from cotlens.errors import CotlensError

    for study in STUDIES:
        for name in ("prompts", "pairs"):
            built = paths.table_path("paper", study, name, "qwen2.5-1.5b")
            assert paths.table_key(built, frozenset(STUDIES)) == f"{study}/{name}"
        for ext in ("png", "json"):
            ref = paths.figure_ref(paths.figure_path("paper", study, "qwen2.5-1.5b", "fig_x", ext))
            assert ref == ("paper", study, "qwen2.5-1.5b", "fig_x")
    assert paths.log_path("r", "circuits_patch", "m") == "results/r/logs/circuits_patch/m.log"
    with pytest.raises(CotlensError, match="is not a figure file"):
        paths.figure_ref("results/r/circuits/m/pairs.parquet")
    # nothing else spells the layout out: no "results/" path built in the package outside paths.py
    spelled = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if p.name != "paths.py" and re.search(r"f\"results/\{|\"/figures/\"|parts\[-[345]\]", p.read_text())
    ]
    assert spelled == []


def test_the_figure_registry_matches_the_plot_functions() -> None:
    for name, study in STUDIES.items():
        plots = importlib.import_module(f"cotlens.{name}.figures")
        assert set(plots.FIGURES) == set(study.figures), name
        for fig, fn in plots.FIGURES.items():
            assert list(inspect.signature(fn).parameters) == ["inputs", "outputs", "model", "dpi"], fig
            assert fn.__name__ == fig  # one name for a figure and its plot function


def test_every_stage_has_the_one_contract_and_a_script() -> None:
    scripts = sorted((ROOT / "scripts").glob("*/*.py"))
    assert len(scripts) >= 25
    assert {p.parent.name for p in scripts} == set(STUDIES) | set(STAGE_GROUPS)
    for script in scripts:
        group, stage = script.parent.name, script.stem
        package = stage_package(group)
        mod = importlib.import_module(f"{package}.{stage}")
        assert list(inspect.signature(mod.run).parameters) == ["inputs", "outputs", "params", "runtime", "threads"]
        assert f"from {package} import {stage}" in script.read_text(), script
        rules = "".join(r.read_text() for r in (ROOT / "workflow" / "rules").glob("*.smk"))
        ran = f'"{group}/{stage}.py"' in rules or (stage == "figure" and 'f"{_study.name}/figure.py"' in rules)
        assert ran, f"no rule runs {group}/{stage}"


@pytest.mark.parametrize("overlay", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_overlay_config_is_valid_on_top_of_the_default(overlay: Path) -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(merged(default, yaml.safe_load(overlay.read_text())), SCHEMA)


def test_the_default_and_the_test_config_are_valid() -> None:
    for path in (ROOT / "config.yaml", ROOT / ".test" / "config.yaml"):
        validate(yaml.safe_load(path.read_text()), SCHEMA)


def test_an_invalid_overlay_is_caught() -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    with pytest.raises(Exception, match="arith|Additional properties"):
        validate(merged(default, {"arith": {"n_problems": 3}}), SCHEMA)


def test_fewer_than_20_dropout_passes_are_refused() -> None:
    default = yaml.safe_load((ROOT / "config.yaml").read_text())
    with pytest.raises(Exception, match="4 is less than the minimum of 20"):
        validate(
            merged(
                default, {"digits": {"confidence": {"estimator": "mc_dropout", "mc_dropout": {"p": 0.1, "samples": 4}}}}
            ),
            SCHEMA,
        )


def test_the_config_schema_allows_exactly_the_typed_values() -> None:
    """One source of truth: each enum of the config schema is a Literal of cotlens.core.types."""
    from cotlens.core import types

    props = yaml.safe_load(Path(SCHEMA).read_text())["properties"]

    def enum(*path: str) -> set[str]:
        node = props
        for i, part in enumerate(path):
            node = node[part] if i == 0 else node["properties"][part]
        return set((node.get("items") or node)["enum"])

    assert enum("circuits", "extract", "positions") == set(types.POSITIONS)
    assert enum("circuits", "pairs", "context") == set(types.PAIR_CONTEXTS)
    assert enum("circuits", "patch", "screen") == set(types.SCREENS)
    assert enum("circuits", "sufficiency", "circuits") == set(types.CIRCUIT_SCOPES)
    assert enum("neurons", "effects", "modes") == set(types.ABLATIONS)
    assert enum("neurons", "discovery", "projection") == set(types.PROJECTIONS)
    assert enum("digits", "confidence", "settings") == set(types.DIGIT_SETTINGS)
    assert enum("digits", "confidence", "estimator") == set(types.DIGIT_ESTIMATORS)
    assert enum("experts", "ftri", "tokens") == set(types.FTRI_TOKENS)
    assert enum("experts", "ftri", "classes") == set(types.FTRI_CLASSES)


# What each layer may import (AST, lazy imports included): nothing below imports upward.
STUDY_NAMES = tuple(STUDIES)
BASE = {"errors", "studies", "paths"}  # pure, import-free registries every layer may read
MAY_IMPORT = {
    "errors": set(),
    "paths": {"errors"},
    "studies": {"errors", "paths"},
    "io": BASE | {"io"},
    "core": BASE | {"io", "core", "models"},  # core and models: one model layer
    "models": BASE | {"io", "core", "models"},
    **{s: BASE | {"io", "core", "models", s} for s in STUDY_NAMES},
    "stages": BASE | {"io", "core", "models", "pipeline", *STUDY_NAMES},
    "pipeline": BASE | {"io", "core", "models", "pipeline", *STUDY_NAMES},
}


def layer_of(rel: Path) -> str:
    """``circuits/stages/x.py`` -> stages, ``circuits/heads.py`` -> circuits, ``errors.py`` -> errors."""
    parts = rel.with_suffix("").parts
    if len(parts) > 2 and parts[1] == "stages":
        return "stages"
    return parts[0]


def test_no_layer_imports_upward() -> None:
    import ast

    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if rel.name == "__init__.py" and len(rel.parts) == 1:
            continue
        layer = layer_of(rel)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cotlens."):
                target = node.module.split(".")[1]
                if target not in MAY_IMPORT[layer]:
                    bad.append(f"{rel}: {node.module}")
    assert bad == []
    # a study's stages do not import another study's methods
    for study in STUDY_NAMES:
        for path in (PKG / study / "stages").glob("*.py"):
            text = path.read_text()
            others = [s for s in STUDY_NAMES if s != study and f"from cotlens.{s}" in text]
            assert others == [], path
