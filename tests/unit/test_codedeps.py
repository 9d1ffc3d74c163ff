from __future__ import annotations

from pathlib import Path

from cotlens.codedeps import module_closure

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def names(script: str) -> set[str]:
    return {str(p.relative_to(SRC / "cotlens")) for p in module_closure(ROOT / "scripts" / script, SRC)}


def test_figures_depend_on_plots_not_on_models() -> None:
    deps = names("figures.py")
    assert {"plotting/prontoqa.py", "plotting/base.py", "stages/figures.py", "parquet.py", "atomic.py"} <= deps
    assert not any(d.startswith("models/") or d in ("hooks.py", "sampling.py", "extract.py") for d in deps)


def test_prompts_are_torch_free_and_exact() -> None:
    deps = names("prompts.py")
    assert "prompts/prontoqa.py" in deps and "prompts/fewshot.py" in deps
    assert "plotting/prontoqa.py" not in deps and "hooks.py" not in deps and "models/loading.py" not in deps


def test_extract_reaches_hooks_transitively() -> None:
    deps = names("extract.py")
    assert {"hooks.py", "extract.py", "stages/extract.py", "models/adapters.py"} <= deps
    assert "plotting/prontoqa.py" not in deps and "sampling.py" not in deps


def test_relative_and_package_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "cotlens"
    (pkg / "sub").mkdir(parents=True)
    for f in ("__init__.py", "sub/__init__.py", "a.py", "unused.py"):
        (pkg / f).write_text("")
    (pkg / "sub" / "b.py").write_text("from .. import a\n")
    (tmp_path / "s.py").write_text("import os\nfrom cotlens.sub import b\n")
    got = {str(p.relative_to(pkg)) for p in module_closure(tmp_path / "s.py", tmp_path / "src")}
    assert got == {"__init__.py", "sub/__init__.py", "sub/b.py", "a.py"}
