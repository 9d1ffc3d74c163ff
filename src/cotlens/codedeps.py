"""Which library files a stage's script depends on, by static import analysis.

Snakemake reruns a job when an input is newer than its outputs, but it only tracks a
``script:``'s own file. The rules therefore list ``code_deps(script)`` as inputs: the
transitive closure of the ``cotlens`` modules that the script imports (parsed with
``ast``; nothing is executed or imported). Editing a module then marks stale exactly the
stages whose scripts reach it.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "cotlens"


def _module_file(src: Path, dotted: str) -> Path | None:
    base = src.joinpath(*dotted.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _parents(src: Path, dotted: str) -> list[Path]:
    parts = dotted.split(".")
    out = []
    for i in range(1, len(parts)):
        init = src.joinpath(*parts[:i], "__init__.py")
        if init.is_file():
            out.append(init)
    return out


def _imports(path: Path, src: Path) -> set[str]:
    return set(_imports_cached(path, src, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4096)
def _imports_cached(path: Path, src: Path, mtime_ns: int) -> frozenset[str]:
    """The cotlens modules one file imports, parsed once per (file, mtime): the Snakefile
    asks for ~30 closures that share most of their files."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = ".".join(path.relative_to(src).with_suffix("").parts) if path.is_relative_to(src) else ""
    if here.endswith(".__init__"):
        here = here[: -len(".__init__")] + ".x"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = here.split(".")[: -node.level]
                mod = ".".join(pkg + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return frozenset(m for m in found if m == PACKAGE or m.startswith(PACKAGE + "."))


def module_closure(script: str | Path, src: str | Path) -> list[Path]:
    """Sorted library files (under ``src``) reachable by imports from ``script``."""
    src = Path(src).resolve()
    seen: set[Path] = set()
    todo = [Path(script).resolve()]
    while todo:
        path = todo.pop()
        for dotted in _imports(path, src):
            for f in [_module_file(src, dotted), *_parents(src, dotted)]:
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return sorted(seen)
