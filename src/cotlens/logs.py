"""Route a script's stdout/stderr into its Snakemake log file."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from cotlens.atomic import explain


class _Log(io.TextIOWrapper):
    """The log file: a failed write (a full disk) becomes one CotlensError naming the log;
    later writes are dropped, so the error is not buried under chained ones."""

    failed = False

    def write(self, s: str) -> int:
        if self.failed:
            return len(s)
        try:
            n = super().write(s)
            super().flush()
            return n
        except OSError as e:
            self.failed = True
            raise explain(e, Path(self.name)) from None

    def close(self) -> None:
        try:
            super().close()
        except OSError as e:
            if not self.failed:  # the first failure: say it once, clearly
                self.failed = True
                raise explain(e, Path(self.name)) from None


@contextlib.contextmanager
def logged(path: str | os.PathLike[str] | None) -> Iterator[None]:
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _Log(open(path, "wb"), encoding="utf-8", line_buffering=True) as fh:  # noqa: SIM115
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            try:
                yield
            except BaseException as e:
                print(f"{type(e).__name__}: {e}", file=fh)
                (sys.__stderr__ or sys.stderr).write(f"{type(e).__name__}: {e}\n")
                raise
