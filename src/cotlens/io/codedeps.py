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
SRC = Path(__file__).resolve().parents[2]  # the directory holding the package (src/)


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


def code_files(module: str) -> list[Path]:
    """The library files that make up ``module`` (a ``cotlens.*`` module name): its own
    file and the closure of what it imports, sorted."""
    src = SRC
    own = _module_file(src, module)
    if own is None:
        raise ValueError(f"{module} is not a module of {src / PACKAGE}")
    return sorted({own, *module_closure(own, src)})


def code_digest(module: str) -> str:
    """sha256 (16 hex) of the names and bytes of :func:`code_files` of ``module``: what a
    resumed stage's shards must have been made with (``cotlens.pipeline.resume.resume_key``)."""
    import hashlib

    src = SRC
    h = hashlib.sha256()
    for f in code_files(module):
        h.update(str(f.relative_to(src)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
