"""Across runs: the headline numbers of every figure of several runs in one table, and
the two headlines that travel between models in one figure (the rift's depth, Study 1;
last-digit confidence without and with the correct higher digits, Study 3).

Reads the figure JSONs only (``results/<run>/<study>/<model>/figures/<figure>.json``,
which the figure stages write), so it needs no model and no Parquet of another run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from cotlens.errors import CotlensError
from cotlens.io.figures import plt, save
from cotlens.io.parquet import Columns
from cotlens.paths import figure_ref

COMPARE = pa.schema(
    [
        ("run", pa.string()),
        ("study", pa.string()),
        ("model", pa.string()),
        ("figure", pa.string()),
        ("key", pa.string()),  # dotted path into the figure's JSON, e.g. conditioning.conditioned_last
        ("value", pa.float64()),  # the number, null for a text
        ("text", pa.string()),  # the text (claim, verdict), null for a number
    ]
)


def where(path: str | os.PathLike[str]) -> tuple[str, str, str, str]:
    """(run, study, model, figure) of ``results/<run>/<study>/<model>/figures/<figure>.json``."""
    bad = CotlensError(f"{path} is not a figure JSON (results/<run>/<study>/<model>/figures/<figure>.json)")
    if Path(path).suffix != ".json":
        raise bad
    try:
        return tuple(figure_ref(path))  # type: ignore[return-value]
    except CotlensError:
        raise bad from None


def flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, float | None, str | None]]:
    """Numbers and texts of a nested dict under dotted keys (lists are left out)."""
    out: list[tuple[str, float | None, str | None]] = []
    for k, v in sorted(d.items()):
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out += flatten(v, key + ".")
        elif isinstance(v, bool):
            out.append((key, float(v), None))
        elif isinstance(v, int | float):
            out.append((key, float(v) if math.isfinite(v) else None, None))
        elif isinstance(v, str):
            out.append((key, None, v))
    return out


def collect(paths: Sequence[str | os.PathLike[str]]) -> pa.Table:
    """One row per (run, study, model, figure, key) of the figure JSONs."""
    cols = Columns(COMPARE)
    for path in sorted(map(str, paths)):
        run, study, model, figure = where(path)
        try:
            data = json.loads(Path(path).read_text())
        except ValueError as e:
            raise CotlensError(f"{path} is not JSON ({e})", "rerun that run's figure rule") from None
        for key, value, text in flatten(data):
            cols.add(run=run, study=study, model=model, figure=figure, key=key, value=value, text=text)
    return cols.table()


def _pick(t: pa.Table, study: str, figure: str, key: str) -> dict[tuple[str, str], float]:
    rows = t.to_pylist()
    return {
        (r["run"], r["model"]): r["value"]
        for r in rows
        if (r["study"], r["figure"], r["key"]) == (study, figure, key) and r["value"] is not None
    }


def plot_headlines(t: pa.Table, outputs: Sequence[str | os.PathLike[str]], dpi: int) -> dict[str, Any]:
    """Rift depth (relative, 0 = first block) and last-digit confidence per (run, model)."""
    rift = _pick(t, "circuits", "rift", "relative_depth")
    plain = _pick(t, "digits", "digit_conditioning", "conditioning.unconditioned_last")
    given = _pick(t, "digits", "digit_conditioning", "conditioning.conditioned_last")
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    labels = sorted(rift)
    a.barh([f"{r} / {m}" for r, m in labels], [rift[k] for k in labels], color="#4c72b0")
    a.axvline(0.5, ls=":", c="grey")
    a.set_xlim(0, 1)
    a.set_xlabel("rift layer / depth (Dutta et al.: ~0.5)")
    a.set_title("Study 1: where in-context reading steps up" if labels else "Study 1: no run has the rift figure")
    both = sorted(set(plain) & set(given))
    y = range(len(both))
    b.barh([i + 0.2 for i in y], [plain[k] for k in both], height=0.4, label="alone", color="#999999")
    b.barh(
        [i - 0.2 for i in y], [given[k] for k in both], height=0.4, label="correct higher digits given", color="#dd8452"
    )
    b.set_yticks(list(y), [f"{r} / {m}" for r, m in both])
    b.set_xlabel("last-digit confidence (Llama-2-13B: 0.13 -> 0.43)")
    b.set_title("Study 3: last-digit confidence" if both else "Study 3: no run has the conditioning figure")
    if both:
        b.legend(fontsize=7)
    fig.tight_layout()
    save(fig, outputs, dpi)
    return {
        "rift_relative_depth": {f"{r}/{m}": v for (r, m), v in sorted(rift.items())},
        "last_digit_confidence": {f"{r}/{m}": [plain[(r, m)], given[(r, m)]] for r, m in both},
    }
