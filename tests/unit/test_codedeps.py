from __future__ import annotations

from pathlib import Path

import pytest

from cotlens.io.codedeps import module_closure

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def names(script: str) -> set[str]:
    return {str(p.relative_to(SRC / "cotlens")) for p in module_closure(ROOT / "scripts" / script, SRC)}


def test_figures_depend_on_plots_not_on_models() -> None:
    studies = ("circuits", "neurons", "digits", "experts")
    for study in studies:
        deps = names(f"{study}/figure.py")
        assert {
            f"{study}/figures.py",
            "io/figures.py",
            f"{study}/stages/figure.py",
            "io/parquet.py",
            "io/atomic.py",
        } <= deps
        assert not any(
            d.startswith(("models/", "core/hooks", "core/sampling")) or d == "circuits/extract.py" for d in deps
        ), study
        assert not any(d.startswith(f"{o}/") for d in deps for o in studies if o != study), study
        # a study's claims are its own; the findings page is the report's alone (#31)
        assert f"{study}/findings.py" in deps and "pipeline/summary.py" not in deps, study


def test_prompts_are_torch_free_and_exact() -> None:
    deps = names("circuits/prompts.py")
    assert "circuits/prompts.py" in deps and "circuits/fewshot.py" in deps
    for study in ("circuits", "neurons", "digits", "experts"):
        deps = names(f"{study}/prompts.py")
        assert not any(
            d.endswith("/figures.py") or d.startswith("models/") or d in ("core/hooks.py", "core/sampling.py")
            for d in deps
        ), study


def test_sample_reaches_the_extraction_and_hooks_transitively() -> None:
    deps = names("circuits/sample.py")
    want = {
        "core/hooks.py",
        "core/sampling.py",
        "circuits/extract.py",
        "circuits/stages/sample.py",
        "models/adapters.py",
    }
    assert want <= deps
    assert "circuits/figures.py" not in deps and "circuits/patching.py" not in deps


def test_no_stage_imports_another_stage() -> None:
    """Stages share only pipeline/stage.py (the contract), the figure stages alone
    pipeline/draw.py, and the model stages whose method has its own check pipeline/gate.py;
    everything else is a method module."""
    from cotlens.studies import stage_package

    for script in sorted((ROOT / "scripts").rglob("*.py")):
        rel = script.relative_to(ROOT / "scripts")
        deps = names(str(rel))
        stages = {d for d in deps if "/stages/" in d and not d.endswith("__init__.py")}
        own = stage_package(rel.parent.name).removeprefix("cotlens.").replace(".", "/") + f"/{rel.name}"
        assert stages == {own}, rel
        gated = {
            "circuits/patch.py",
            "digits/confidence.py",
            "neurons/effects.py",
            "experts/routes.py",
            "experts/effects.py",
        }
        assert "pipeline/stage.py" in deps, rel
        assert ("pipeline/draw.py" in deps) == (rel.name == "figure.py"), rel
        assert ("pipeline/gate.py" in deps) == (str(rel) in gated), rel


def test_relative_and_package_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "cotlens"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "sub/__init__.py", "a.py", "unused.py"):
        (pkg / f).write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\n")
    (tmp_path / "s.py").write_text("import os\nfrom cotlens.sub import b\n")
    got = {str(p.relative_to(pkg)) for p in module_closure(tmp_path / "s.py", tmp_path / "src")}
    assert got == {"__init__.py", "sub/__init__.py", "sub/b.py", "a.py"}


def test_a_stage_resume_key_changes_with_its_code_closure_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's case: a shard written by the old extract.py must not be reused after an
    edit of extract.py (imported by circuits_sample, which records the activations) (the resume key holds the closure's bytes); an edit of a module the
    stage does not import leaves its shards valid."""
    import shutil

    import pyarrow as pa

    from cotlens.io import codedeps
    from cotlens.io.parquet import RunMeta
    from cotlens.io.shards import Shards
    from cotlens.pipeline.resume import resume_key

    copy = tmp_path / "src"
    shutil.copytree(SRC / "cotlens", copy / "cotlens")
    monkeypatch.setattr(codedeps, "SRC", copy)
    stage = "cotlens.circuits.stages.sample"
    files = {str(p.relative_to(copy / "cotlens")) for p in codedeps.code_files(stage)}
    assert {"circuits/stages/sample.py", "circuits/extract.py", "core/hooks.py", "io/shards.py"} <= files
    assert "experts/methods.py" not in files and "circuits/figures.py" not in files

    up = tmp_path / "upstream"
    up.write_text("x")
    out = tmp_path / "activations"

    def shards() -> Shards:
        key = resume_key(stage, {"batch": 2}, {"device": "cpu"}, up)
        return Shards(out, "circuits_sample", RunMeta.of("circuits_sample", key), 3)

    first = shards()
    first.write(0, pa.table({"x": [1.0]}))
    assert shards().done(0)
    (copy / "cotlens" / "experts" / "methods.py").write_text("# an edit outside the closure\n")
    assert shards().done(0)
    src = copy / "cotlens" / "circuits" / "extract.py"
    src.write_text(src.read_text().replace("resid", "resid_doubled", 1))
    again = shards()
    assert not again.done(0)  # the old code's shard is recomputed, never mixed in
    assert again.reused == 0
    key = resume_key(stage, {"batch": 2}, {"device": "cpu"}, up)
    assert set(key) >= {"_code", "_versions", "_upstream", "_runtime"} and "torch" in key["_versions"]


def test_the_import_cache_gives_the_parsed_closures_and_follows_content_not_mtime(tmp_path: Path) -> None:
    """The Snakefile's disk cache of each file's imports (keyed by content): every script's
    closure is the uncached one; an edit that keeps size and mtime is still seen; a cache
    file that is not JSON is parsed again, not trusted."""
    import os
    import shutil

    from cotlens.io.codedeps import ImportCache

    cache_file = tmp_path / "cache" / "imports.json"
    scripts = sorted((ROOT / "scripts").rglob("*.py"))
    for round_ in range(2):  # the second round reads every file's imports from the disk cache
        cache = ImportCache(cache_file)
        for s in scripts:
            assert module_closure(s, SRC, cache) == module_closure(s, SRC), (round_, s)
        assert cache.dirty is False and cache_file.is_file()
    assert len(ImportCache(cache_file).known) > 50

    src = tmp_path / "src"
    shutil.copytree(SRC / "cotlens", src / "cotlens")
    script = tmp_path / "s.py"
    script.write_text("from cotlens import edited\n")
    target = src / "cotlens" / "edited.py"
    target.write_text("import cotlens.io.logs\n")
    assert src / "cotlens" / "io" / "logs.py" in module_closure(script, src, ImportCache(cache_file))
    st = target.stat()
    target.write_text("import cotlens.io.fake\n")  # same size
    (src / "cotlens" / "io" / "fake.py").write_text("")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: new bytes only
    assert target.stat().st_size == st.st_size
    closure = module_closure(script, src, ImportCache(cache_file))
    assert src / "cotlens" / "io" / "fake.py" in closure and src / "cotlens" / "io" / "logs.py" not in closure
    assert (
        len([k for k in ImportCache(cache_file).known if k.startswith("cotlens/edited.py|")]) == 1
    )  # the old one went
    cache_file.write_text("{not json")
    cache = ImportCache(cache_file)
    assert module_closure(script, src, cache) == module_closure(script, src) and cache.dirty is False
