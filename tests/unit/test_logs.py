"""The stage log (time-stamped lines, no carriage-return spam) and the progress reports."""

from __future__ import annotations

import re
import resource
import time
from pathlib import Path

import pytest

from cotlens.io import logs


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_reports_rate_and_eta_to_the_log_and_sparsely_to_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    console: list[str] = []
    monkeypatch.setattr(logs, "console", console.append)
    clock = Clock()
    with logs.logged(tmp_path / "job.log", "circuits_patch tiny"):
        with logs.Progress(10, "pairs", every=60, clock=clock) as p:
            for _ in range(10):
                clock.t += 15.0  # 15 s a pair: 4 per minute
                p.update(note="x")
    text = (tmp_path / "job.log").read_text().splitlines()
    assert text[0].split(" ", 1)[1].startswith("circuits_patch tiny: started ")
    assert all(re.match(r"\d\d:\d\d:\d\d ", line) for line in text)  # every line has its time
    updates = [line for line in text if "/10 pairs" in line]
    assert len(updates) == 10  # every batch in the log
    assert "3/10 pairs (30%), 0.0667 pairs/s, elapsed 45s, ETA 1m45s - x" in updates[2]
    assert "ETA -" in updates[-1] and text[-2].endswith("done: 10 pairs in 2m30s")
    # the console: the first update, then one a minute (15 s steps: every 4th), and the end
    assert [c.split(" - ")[0].split(",")[0] for c in console] == [
        "1/10 pairs (10%)",
        "5/10 pairs (50%)",
        "9/10 pairs (90%)",
        "done: 10 pairs in 2m30s",
    ]


def test_the_log_ends_with_the_jobs_time_and_memory_finished_or_failed(tmp_path: Path) -> None:
    age = logs.process_age()
    assert age > 0  # Linux: this process started before the test
    ru = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    with logs.logged(tmp_path / "job.log", "circuits_lens tiny"):
        print("no newline at the end", end="")
        time.sleep(0.3)
        block = bytearray(b"\x01") * (300 * 10**6)  # 300 MB written, so resident
    spent = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_SELF)
    last = (tmp_path / "job.log").read_text().splitlines()[-1]
    assert re.fullmatch(r"\d\d:\d\d:\d\d circuits_lens tiny: finished after .* MB", last)
    jt = logs.job_time(tmp_path / "job.log")
    assert jt is not None and jt.finished
    # the wall time counts from the process's start, not the log's opening
    assert age + 0.3 <= jt.wall_s <= age + spent + 0.05
    assert ru.ru_utime + ru.ru_stime - 0.01 <= jt.cpu_s <= after.ru_utime + after.ru_stime + 0.01
    assert jt.max_rss_mb >= len(block) / 1e6
    with pytest.raises(RuntimeError, match="boom"):
        with logs.logged(tmp_path / "failed.log", "x"):
            raise RuntimeError("boom")
    failed = logs.job_time(tmp_path / "failed.log")
    assert failed is not None and not failed.finished and failed.wall_s >= age
    # a log a kill cut short (no last line), and no log
    (tmp_path / "killed.log").write_text("x: started 2026-12-06T10:00:00 on host\n")
    assert logs.job_time(tmp_path / "killed.log") is None
    assert logs.job_time(tmp_path / "missing.log") is None


def test_log_stamps_lines_and_breaks_carriage_returns(tmp_path: Path) -> None:
    with logs.logged(tmp_path / "job.log", "x"):
        print("Loading weights:  40%\rLoading weights: 100%", end="")
        print(" done")
        print("two\nlines")
    lines = (tmp_path / "job.log").read_text().splitlines()[1:-1]
    assert [line[9:] for line in lines] == ["Loading weights:  40%", "Loading weights: 100% done", "two", "lines"]


def test_progress_wraps_an_iterable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    console: list[str] = []
    monkeypatch.setattr(logs, "console", console.append)
    assert list(logs.progress(range(3), unit="batches")) == [0, 1, 2]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1/3 batches (33%)") and out[-1].startswith("done: 3 batches in ")
    assert console[-1].startswith("done: 3 batches")
    assert logs.duration(3725) == "1h02m" and logs.duration(185) == "3m05s" and logs.duration(42) == "42s"
