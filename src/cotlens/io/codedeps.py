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
import hashlib
import json
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


class ImportCache:
    """The cotlens imports of each file, keyed by its place under ``src`` and the sha1 of its
    bytes, kept in a JSON file between Snakemake's parses of the Snakefile: each parse (every
    ``snakemake -n``, every run) asks for ~30 closures over ~130 files, and parsing them
    all with ``ast`` was ~0.5 s of a ~2.5 s dry run. Reading and hashing the files is what
    remains; a file whose bytes changed is parsed again, whatever its mtime says."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            data = json.loads(self.path.read_text())
            self.known: dict[str, list[str]] = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            self.known = {}  # none yet, or unreadable: parse again
        self.dirty = False
        self.used: dict[Path, str] = {}  # this parse: each file's key (its bytes read once)

    def imports(self, path: Path, src: Path) -> set[str]:
        if path in self.used:
            return set(self.known[self.used[path]])
        data = path.read_bytes()
        key = f"{path.relative_to(src) if path.is_relative_to(src) else path}|{hashlib.sha1(data).hexdigest()}"
        if key not in self.known:
            self.known[key] = sorted(_parse_imports(data.decode(), path, src))
            self.dirty = True
        self.used[path] = key
        return set(self.known[key])

    def save(self) -> None:
        """Write the cache if a file was parsed (atomically: a parse beside it reads the old
        one or the new one); a directory that cannot be written is not an error."""
        if not self.dirty:
            return
        from cotlens.io.atomic import write_text

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # an edited file's old entries go (a file seen this parse keeps its current one)
            current = set(self.used.values())
            places = {k.rsplit("|", 1)[0] for k in current}
            self.known = {k: v for k, v in self.known.items() if k in current or k.rsplit("|", 1)[0] not in places}
            write_text(self.path, json.dumps(self.known, sort_keys=True))
            self.dirty = False
        except OSError:
            pass


def _imports(path: Path, src: Path, cache: ImportCache | None = None) -> set[str]:
    if cache is not None:
        return cache.imports(path, src)
    return set(_imports_cached(path, src, path.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4096)
def _imports_cached(path: Path, src: Path, mtime_ns: int) -> frozenset[str]:
    """The cotlens modules one file imports, parsed once per (file, mtime): the Snakefile
    asks for ~30 closures that share most of their files."""
    return _parse_imports(path.read_text(), path, src)


def _parse_imports(text: str, path: Path, src: Path) -> frozenset[str]:
    tree = ast.parse(text, filename=str(path))
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


def module_closure(script: str | Path, src: str | Path, cache: ImportCache | None = None) -> list[Path]:
    """Sorted library files (under ``src``) reachable by imports from ``script``; with a
    ``cache``, each file's imports are looked up there by content (and saved once)."""
    src = Path(src).resolve()
    seen: set[Path] = set()
    todo = [Path(script).resolve()]
    while todo:
        path = todo.pop()
        for dotted in _imports(path, src, cache):
            for f in [_module_file(src, dotted), *_parents(src, dotted)]:
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    if cache is not None:
        cache.save()
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
