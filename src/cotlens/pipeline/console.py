"""What ``make run`` and ``cotlens run`` show of Snakemake's console.

Snakemake prints every job's inputs; ours list the library files the stage's code
imports (``code_deps``: ~25 paths, ~1,000 characters a job) and "Shell command: None"
for the ``script:`` rules. ``compact`` keeps the data inputs and counts the code files,
and cuts any other file list of a job (outputs, the reason's files) after six with a
count; everything else passes unchanged. The complete console (every input) stays in
Snakemake's own log, ``.snakemake/log/``, and ``make run V=1`` / ``cotlens run --verbose``
shows it; ``snakemake -n -r`` lists the reasons a job would rerun, code files included.

Torch-free: ``python -m cotlens.pipeline.console`` filters stdin to stdout.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable
from typing import TextIO

CODE = ("src/", "scripts/")  # code_deps are relative to the working directory
MAX_SHOWN = 6  # files of a list shown before "(+N more)"


def _shorten(items: list[str], extra: list[str]) -> str:
    shown = items[:MAX_SHOWN]
    more = ([f"{len(items) - len(shown)} more"] if len(items) > len(shown) else []) + extra
    tail = f"(+{', '.join(more)})" if more else ""
    return " ".join(p for p in (", ".join(shown), tail) if p)


def compact(line: str) -> str | None:
    """One console line, compacted (None: drop it)."""
    body = line.rstrip("\n")
    if body.strip() == "Shell command: None":
        return None
    head, sep, rest = body.partition(": ")
    field = head.strip()
    if not sep or head[: len(head) - len(field)] == "" or field not in ("input", "output", "reason"):
        return body
    if field == "input":
        items = [s for s in rest.split(", ") if s]
        data = [s for s in items if not s.startswith(CODE)]
        n_code = len(items) - len(data)
        return f"{head}: {_shorten(data, [f'{n_code} code files'] if n_code else [])}"
    # output, reason ("Missing output files: a, b, ..."): long lists cut, nothing hidden
    why, colon, listed = rest.rpartition(": ") if field == "reason" else ("", "", rest)
    items = [s for s in listed.split(", ") if s]
    if len(items) <= MAX_SHOWN:
        return body
    return f"{head}: {why}{colon}{_shorten(items, [])}"


def run_filter(lines: Iterable[str], out: TextIO) -> None:
    for line in lines:
        kept = compact(line)
        if kept is not None:
            out.write(kept + "\n")
            out.flush()


def main() -> int:
    # Ctrl-C reaches Snakemake too: keep passing its last words through until it closes the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_filter(sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
