"""The stage log (time-stamped lines, no carriage-return spam) and the progress reports."""

from __future__ import annotations

import re
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
    assert "ETA -" in updates[-1] and text[-1].endswith("done: 10 pairs in 2m30s")
    # the console: the first update, then one a minute (15 s steps: every 4th), and the end
    assert [c.split(" - ")[0].split(",")[0] for c in console] == [
        "1/10 pairs (10%)",
        "5/10 pairs (50%)",
        "9/10 pairs (90%)",
        "done: 10 pairs in 2m30s",
    ]


def test_log_stamps_lines_and_breaks_carriage_returns(tmp_path: Path) -> None:
    with logs.logged(tmp_path / "job.log", "x"):
        print("Loading weights:  40%\rLoading weights: 100%", end="")
        print(" done")
        print("two\nlines")
    lines = (tmp_path / "job.log").read_text().splitlines()[1:]
    assert [line[9:] for line in lines] == ["Loading weights:  40%", "Loading weights: 100% done", "two", "lines"]


def test_progress_wraps_an_iterable(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    console: list[str] = []
    monkeypatch.setattr(logs, "console", console.append)
    assert list(logs.progress(range(3), unit="batches")) == [0, 1, 2]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1/3 batches (33%)") and out[-1].startswith("done: 3 batches in ")
    assert console[-1].startswith("done: 3 batches")
    assert logs.duration(3725) == "1h02m" and logs.duration(185) == "3m05s" and logs.duration(42) == "42s"
