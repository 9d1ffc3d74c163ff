"""A stage's log and its progress.

``logged`` routes a script's stdout/stderr into its Snakemake log file, each line
stamped with the time, and ends it with the job's time and memory (``JobTime``: wall
seconds since the job's process started, CPU seconds, peak resident memory; ``job_time``
reads them back, for ``benchmarks/bench_stages.py``). ``Progress`` (and ``progress`` around an iterable) reports a
model stage's work per batch: every update to the log (count, rate, ETA), and a compact
line to the console (the terminal or SLURM log Snakemake writes to) on the first
update, then at most every ``COTLENS_PROGRESS_EVERY`` seconds (default 60), and at the end.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, TypeVar

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

    @property
    def at_line_start(self) -> bool:
        return self._at_line_start

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


class JobTime(NamedTuple):
    """A job's cost, the last line of its log: ``finished`` (or failed) after ``wall_s``
    seconds since its process started (the interpreter and the imports included, as
    Snakemake's ``benchmark:`` counted them), ``cpu_s`` user and system seconds, and the
    process's peak resident memory in MB."""

    finished: bool
    wall_s: float
    cpu_s: float
    max_rss_mb: float

    def line(self) -> str:
        end = "finished" if self.finished else "failed"
        return (
            f"{end} after {self.wall_s:.2f} s wall (since the process started), "
            f"{self.cpu_s:.2f} s CPU, peak RSS {self.max_rss_mb:.1f} MB"
        )


_JOB_TIME = re.compile(
    r"(?P<end>finished|failed) after (?P<wall>[0-9.]+) s wall \(since the process started\), "
    r"(?P<cpu>[0-9.]+) s CPU, peak RSS (?P<rss>[0-9.]+) MB$"
)


def process_age() -> float:
    """Seconds since this process started: from ``/proc/self/stat`` on Linux; elsewhere
    0.0, so that a job's wall time counts from the log's opening (its imports not included)."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, in clock ticks
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started / os.sysconf("SC_CLK_TCK"))
    except (OSError, IndexError, ValueError, AttributeError):
        return 0.0


def usage(started: float, finished: bool) -> JobTime:
    """This process's cost since ``started`` (a ``time.monotonic()`` reading)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rss_bytes = ru.ru_maxrss if sys.platform == "darwin" else ru.ru_maxrss * 1024
    return JobTime(finished, time.monotonic() - started, ru.ru_utime + ru.ru_stime, rss_bytes / 1e6)


def job_time(log: str | os.PathLike[str]) -> JobTime | None:
    """The job's time and memory from its log (the line ``logged`` ends it with), or None
    for a log without one (a job killed before it ended, or a log of an older version)."""
    p = Path(log)
    if not p.is_file():
        return None
    for line in reversed(p.read_text(errors="replace").splitlines()):
        if m := _JOB_TIME.search(line):
            return JobTime(m["end"] == "finished", float(m["wall"]), float(m["cpu"]), float(m["rss"]))
    return None


@contextlib.contextmanager
def logged(path: str | os.PathLike[str] | None, job: str = "") -> Iterator[None]:
    """Everything printed inside goes to the log at ``path``; ``job`` ("<rule> <wildcards>")
    heads the log and labels the console lines of ``Progress``; the log's last line is the
    job's ``JobTime``."""
    set_job(job)
    if not path:
        yield
        return
    started = time.monotonic() - process_age()
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
                _end(fh, job, usage(started, finished=False))
                raise
            _end(fh, job, usage(started, finished=True))


def _end(fh: _Log, job: str, spent: JobTime) -> None:
    """The log's last line, on a line of its own even after output without a newline."""
    fh.write(f"{'' if fh.at_line_start else chr(10)}{job or 'cotlens'}: {spent.line()}\n")
