"""A stage's log and its progress.

``logged`` routes a script's stdout/stderr into its Snakemake log file, each line
stamped with the time. ``Progress`` (and ``progress`` around an iterable) reports a
model stage's work per batch: every update to the log (count, rate, ETA), and a compact
line to the console (the terminal or SLURM log Snakemake writes to) on the first
update, then at most every ``COTLENS_PROGRESS_EVERY`` seconds (default 60), and at the end.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from cotlens.io.atomic import explain

T = TypeVar("T")
_job = ""  # "<rule> <wildcards>": who a console line is from (set by from_snakemake)


def set_job(label: str) -> None:
    global _job
    _job = label


def stamp() -> str:
    return datetime.now().strftime("%H:%M:%S")


def duration(seconds: float) -> str:
    """1h02m, 3m05s, 42s."""
    s = int(round(max(0.0, seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def console(line: str) -> None:
    """One line to the console, past a log redirection."""
    out = sys.__stderr__ or sys.stderr
    out.write(f"{stamp()} {_job + ': ' if _job else ''}{line}\n")
    out.flush()


class Progress:
    """Work done out of ``total`` units, with rate and ETA (see the module docstring).

    ``progress.update(n)`` after each batch; ``close()`` (or leaving a ``with``) says how
    long it all took. ``total`` may grow (``add``) when work is found as it goes."""

    def __init__(
        self,
        total: int,
        unit: str = "batches",
        what: str = "",
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.unit, self.what, self.done = int(total), unit, what, 0
        self.every = float(os.environ.get("COTLENS_PROGRESS_EVERY", 60)) if every is None else every
        self.clock = clock
        self.start = clock()
        self._console_at: float | None = None
        self.closed = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.close()

    def line(self) -> str:
        dt = self.clock() - self.start
        rate = self.done / dt if dt > 0 else 0.0
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = duration((self.total - self.done) / rate) if rate > 0 and self.total > self.done else "-"
        what = f"{self.what} " if self.what else ""
        return (
            f"{what}{self.done}/{self.total} {self.unit}{pct}, {rate:.3g} {self.unit}/s, "
            f"elapsed {duration(dt)}, ETA {eta}"
        )

    def update(self, n: int = 1, note: str = "") -> None:
        self.done += n
        text = self.line() + (f" - {note}" if note else "")
        print(text, flush=True)  # the log (stdout is redirected there)
        now = self.clock()
        if self._console_at is None or now - self._console_at >= self.every:
            self._console_at = now
            console(text)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        what = f"{self.what} " if self.what else ""
        text = f"{what}done: {self.done} {self.unit} in {duration(self.clock() - self.start)}"
        print(text, flush=True)
        console(text)


def progress(items: Iterable[T], total: int | None = None, unit: str = "batches", what: str = "") -> Iterator[T]:
    """``for batch in progress(batches):`` reports each one done (``Progress``)."""
    if total is None:
        total = len(items) if hasattr(items, "__len__") else 0  # type: ignore[arg-type]
    with Progress(total, unit, what) as p:
        for item in items:
            yield item
            p.update()


class _Log(io.TextIOWrapper):
    """The log file: each line starts with the time; a carriage return (a progress bar a
    library draws) ends a line. A failed write (a full disk) becomes one CotlensError
    naming the log; later writes are dropped, so the error is not buried under chained ones."""

    failed = False
    _at_line_start = True

    def write(self, s: str) -> int:
        if self.failed:
            return len(s)
        parts = []
        for piece in s.replace("\r\n", "\n").replace("\r", "\n").splitlines(keepends=True):
            parts.append(f"{stamp()} {piece}" if self._at_line_start else piece)
            self._at_line_start = piece.endswith("\n")
        try:
            super().write("".join(parts))
            super().flush()
            return len(s)
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
def logged(path: str | os.PathLike[str] | None, job: str = "") -> Iterator[None]:
    """Everything printed inside goes to the log at ``path``; ``job`` ("<rule> <wildcards>")
    heads the log and labels the console lines of ``Progress``."""
    set_job(job)
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with _Log(open(path, "wb"), encoding="utf-8", line_buffering=True) as fh:  # noqa: SIM115
        import socket

        fh.write(
            f"{job or 'cotlens'}: started {datetime.now().isoformat(timespec='seconds')} on {socket.gethostname()}\n"
        )
        with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            try:
                yield
            except BaseException as e:
                print(f"{type(e).__name__}: {e}", file=fh)
                (sys.__stderr__ or sys.stderr).write(f"{type(e).__name__}: {e}\n")
                raise
