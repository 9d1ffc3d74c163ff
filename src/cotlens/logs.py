"""Route a script's stdout/stderr into its Snakemake log file."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged(path: str | os.PathLike[str] | None) -> Iterator[None]:
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            yield
        except BaseException as e:
            print(f"{type(e).__name__}: {e}", file=fh)
            (sys.__stderr__ or sys.stderr).write(f"{type(e).__name__}: {e}\n")
            raise
