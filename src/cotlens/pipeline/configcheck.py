"""Limits on configuration files, checked before Snakemake validates them.

A YAML alias bomb (nested aliases: a few hundred bytes that expand to billions of
nodes) loads in milliseconds, because PyYAML shares aliased nodes; what hangs is the
first thing that walks it (jsonschema validation, then its error message pprints the
whole instance). An alias cycle (``x: &x [*x]``) loads as a list that contains itself.
:func:`check_config` measures the *expanded* size of the loaded config in time linear
in the number of distinct nodes, so both become one :class:`CotlensError` naming the
file, in milliseconds. It also refuses keys that are not names (``1: x``) and nesting
deeper than any cotlens setting. :func:`check_files` refuses a file too large to be a
configuration before anything parses it, and names the file and line of a YAML error
(a tab-indented file, say).
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cotlens.errors import CotlensError

MAX_BYTES = 4 << 20  # the default config is 10 KB
MAX_NODES = 1_000_000  # expanded: scalars, lists and mappings after aliases are followed
MAX_DEPTH = 32  # the schema nests 4 deep


class _Limit(Exception):
    pass


def _children(x: Any) -> list[tuple[str, Any]]:
    if isinstance(x, Mapping):
        return [(str(k), v) for k, v in x.items()]
    if isinstance(x, list | tuple):
        return [(f"[{i}]", v) for i, v in enumerate(x)]
    return []


def measure(obj: Any) -> int:
    """The expanded node count of ``obj`` (aliases followed), with the limits checked.

    Iterative (no recursion limit) and memoised by object identity, so shared (aliased)
    subtrees are walked once. Raises ``_Limit`` with the path of the offending node."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, str, int, bool]] = [(obj, "", 0, False)]
    while stack:
        x, where, depth, done = stack.pop()
        kids = _children(x)
        if not kids:
            continue
        if done:
            on_path.discard(id(x))
            sizes[id(x)] = 1 + sum(sizes.get(id(v), 1) for _, v in kids)
            if sizes[id(x)] > MAX_NODES:
                raise _Limit(f"{where or 'the file'} expands to more than {MAX_NODES:,} values (nested YAML aliases?)")
            continue
        if id(x) in sizes:
            continue
        if id(x) in on_path:
            raise _Limit(f"{where} contains itself (a YAML alias cycle)")
        if depth > MAX_DEPTH:
            raise _Limit(f"{where} is nested {depth} levels deep; no cotlens setting nests more than 4")
        if isinstance(x, Mapping):
            bad = [k for k in x if not isinstance(k, str)]
            if bad:
                raise _Limit(f"key {bad[0]!r} in {where or 'the top level'} is not a name ({type(bad[0]).__name__})")
        on_path.add(id(x))
        stack.append((x, where, depth, True))
        for name, v in kids:
            stack.append(
                (v, f"{where}.{name}" if where and not name.startswith("[") else f"{where}{name}", depth + 1, False)
            )
    return sizes.get(id(obj), 1)


def check_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Each config file exists, is of a configuration's size, and parses as YAML."""
    import yaml

    for p in map(Path, paths):
        if p.is_dir():
            raise CotlensError(f"config file {p} is a directory", "give a YAML file, e.g. config/paper.yaml")
        if not p.is_file():
            raise CotlensError(
                f"config file {p} does not exist", "check the path (relative to the checkout), e.g. config/paper.yaml"
            )
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise CotlensError(
                f"config file {p} is {size / 2**20:.1f} MiB; a cotlens configuration is a few KB "
                f"(limit {MAX_BYTES >> 20} MiB)",
                "pass the settings file, not a data file (data such as GSM8K goes in by path)",
            )
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except PermissionError:
            raise CotlensError(f"config file {p} is not readable (permission denied)", f"chmod u+r {p}") from None
        except UnicodeDecodeError as e:
            raise CotlensError(f"config file {p} is not UTF-8 text ({e.reason})", "save it as UTF-8 YAML") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            why = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise CotlensError(
                f"config file {p} is not valid YAML{at}: {why}",
                "indent with spaces only (YAML forbids tabs) and check the brackets and quotes there",
            ) from None
        if data is not None and not isinstance(data, dict):
            raise CotlensError(
                f"config file {p} holds a YAML {type(data).__name__}, not a mapping of settings",
                "write it as `key: value` lines, e.g. `run: mine` (see config.yaml)",
            )
        check_config(data, [p])


# settings that no longer exist, and why: an older config gets this, not the schema's dump
RETIRED: dict[tuple[str, ...], str] = {
    ("circuits", "extract", "batch_size"): "circuits_sample records the activations while it generates, "
    "in its own batches (circuits.sample.batch_size)",
    ("circuits", "extract", "shard_size"): "circuits_sample writes one activations shard per generation batch",
}


def check_config(config: Any, files: Sequence[str | os.PathLike[str]]) -> None:
    """The loaded (merged) config is within the limits and names no retired setting
    (:data:`RETIRED`); on a breach, name the file."""
    where = ", ".join(map(str, files)) or "(command line)"
    try:
        measure(config)
    except _Limit as e:
        raise CotlensError(
            f"config {where}: {e}",
            "write each value out (YAML aliases may not nest or refer to themselves), keys as names",
        ) from None
    for path, why in RETIRED.items():
        node = config
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is not None:
            raise CotlensError(
                f"config {where}: {'.'.join(path)} is no longer a setting ({why})", f"delete {'.'.join(path)}"
            )


MAX_NAME = 64
# a name becomes one path component (results/<run>/, resources/models/<model>/,
# config/local-<name>.yaml): letters and digits of any script (kept, NFC), _ . -
_NAME = re.compile(r"\w[\w.-]*")


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be a run or model name, or None if it can."""
    if not isinstance(value, str) or not value:
        return "is empty" if value == "" else f"is not a name ({type(value).__name__})"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long (at most {MAX_NAME})"
    if unicodedata.normalize("NFC", value) != value:
        return "is not in Unicode normal form NFC (two spellings of one name)"
    if ".." in value or not _NAME.fullmatch(value):
        bad = sorted({c for c in value if not (c.isalnum() or c in "_.-")})
        why = f"contains {', '.join(map(repr, bad))}" if bad else "contains '..' or starts with '.' or '-'"
        return f"{why}: a name is one path component (letters, digits, _ . -)"
    return None


def check_name(what: str, value: object, where: str = "") -> str:
    """``value`` as a run or model name, or one :class:`CotlensError` naming ``what``."""
    why = name_problem(value)
    if why is not None:
        raise CotlensError(
            f"{what} {value!r}{f' ({where})' if where else ''} {why}",
            "use letters, digits, _ . - (at most 64 characters); it names a directory under results/ or resources/",
        )
    return str(value)


def check_names(config: Mapping[str, Any], files: Sequence[str | os.PathLike[str]] = ()) -> None:
    """The run name and every registry model name of a loaded (merged) config."""
    where = ", ".join(map(str, files))
    if "run" in config:
        check_name("run", config["run"], where)
    models = config.get("models")
    for name in models if isinstance(models, Mapping) else ():
        check_name("model", name, where)


def run_name(paths: Iterable[str | os.PathLike[str]]) -> str:
    """The ``run:`` the config files give (the last one that sets it wins), else default;
    checked as a name (no path separators, no ``..``) before anything is written there."""
    import yaml

    name, where = "default", ""
    for p in map(Path, paths):
        data = yaml.safe_load(p.read_text(encoding="utf-8")) if p.is_file() else None
        if isinstance(data, dict) and "run" in data:
            name, where = data["run"], str(p)
    return check_name("run", name, where)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m cotlens.pipeline.configcheck [--run] FILE...``: the checks above, before
    Snakemake's command line parses the files (it reads a 36 MB file for minutes before
    any check); ``--run`` then prints the run name (the Makefile puts the report there)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    show_run = "--run" in args
    files = [a for a in args if a != "--run"]
    try:
        check_files(files)
    except CotlensError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if show_run:
        print(run_name(files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
