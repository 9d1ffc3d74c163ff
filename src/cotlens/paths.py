"""Where a run's results lie, built and parsed in this one place:

    results/<run>/<study>/prompts.parquet                  a study's prompts
    results/<run>/<study>/<model>/<table>.parquet          its other tables
    results/<run>/<study>/<model>/figures/<figure>.<ext>   its figures (png, pdf, json, html)
    results/<run>/logs/<rule>/<model or study>.log         a job's log; its last line is the
                                                           job's time and memory (io.logs.JobTime)

Pure Python and import-free (the Snakefile reads it while parsing; every layer may).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import NamedTuple

from cotlens.errors import CotlensError

RESULTS = "results"


def run_dir(run: str) -> str:
    return f"{RESULTS}/{run}"


def table_path(run: str, study: str, name: str, model: str) -> str:
    """A study's Parquet table: ``prompts`` once per study, any other per model."""
    if name == "prompts":
        return f"{run_dir(run)}/{study}/prompts.parquet"
    return f"{run_dir(run)}/{study}/{model}/{name}.parquet"


def figure_path(run: str, study: str, model: str, figure: str, ext: str) -> str:
    return f"{run_dir(run)}/{study}/{model}/figures/{figure}.{ext}"


def log_path(run: str, rule: str, per: str) -> str:
    return f"{run_dir(run)}/logs/{rule}/{per}.log"


class FigureRef(NamedTuple):
    run: str
    study: str
    model: str
    figure: str


def figure_ref(path: str | os.PathLike[str]) -> FigureRef:
    """The run, study, model and figure of a figure file (any extension)."""
    p = Path(path)
    parts = p.parts
    if len(parts) < 5 or parts[-2] != "figures":
        raise CotlensError(f"{p} is not a figure file (results/<run>/<study>/<model>/figures/<figure>.<ext>)")
    return FigureRef(parts[-5], parts[-4], parts[-3], p.stem)


def table_key(path: str | os.PathLike[str], studies: set[str] | frozenset[str]) -> str:
    """``<study>/<stem>`` of a table path ``.../<study>[/<model>]/<stem>.parquet`` (or of a
    shard directory named like the table); ``studies``: the study names."""
    p = Path(path)
    study = p.parent.name if p.parent.name in studies else p.parent.parent.name
    return f"{study}/{p.name.removesuffix('.parquet')}"


def figure_jsons(results: str | os.PathLike[str]) -> list[Path]:
    """Every figure JSON of a run's results directory (``results/<run>``)."""
    return sorted(Path(p) for p in glob.glob(os.path.join(results, "*", "*", "figures", "*.json")))
