"""The findings of a run, from its figure JSONs: the report's landing page and a table.

For every figure that tests a paper's claim (``cotlens.<study>.findings.CLAIMS``), one row: the
claim, the paper's number, the primary comparison and the smallest effect of interest,
this run's number with its 95% interval and n, the verdict and its reason. The row is the
figure's ``headline`` (the same object its title was written from); nothing here computes.
The verdict vocabulary and rules are in :mod:`cotlens.core.verdicts`.

Reads ``results/<run>/<study>/<model>/figures/<figure>.json`` only, whatever exists: a
partial run gets the rows of the figures it has and a list of the missing ones.
Torch-free; ``figure_html`` renders one figure's numbers and tables for the report.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from cotlens.core.verdicts import VERDICTS, Claim, Headline
from cotlens.paths import figure_jsons, figure_ref
from cotlens.studies import STUDIES

SUMMARY = pa.schema(
    [
        ("run", pa.string()),
        ("study", pa.string()),
        ("model", pa.string()),
        ("figure", pa.string()),
        ("claim", pa.string()),  # the paper's claim
        ("paper", pa.string()),  # the paper's number, model and setting
        ("primary", pa.string()),  # the comparison tested (the paper's cell, k, setting or subtask)
        ("sesoi", pa.string()),  # the smallest effect of interest and where it comes from
        ("value", pa.string()),  # this run's number, in words
        ("ci95", pa.string()),  # the effect's 95% interval ("" where there is none)
        ("n", pa.string()),  # what the number is over
        ("verdict", pa.string()),  # one of cotlens.core.verdicts.VERDICTS
        ("reason", pa.string()),  # why this verdict
        ("gates", pa.string()),  # the study's preconditions on this model, one per line
    ]
)


def all_claims() -> dict[str, Claim]:
    """Every study's claims, in the studies' order, each from its ``cotlens.<study>.findings``
    (imported by name: a new study adds its claims in its own package)."""
    out: dict[str, Claim] = {}
    for study in STUDIES:
        out.update(importlib.import_module(f"cotlens.{study}.findings").CLAIMS)
    return out


CLAIMS = all_claims()


def row(run: str, study: str, model: str, h: Headline) -> dict[str, str]:
    """One summary row: the claim's declaration beside the figure's headline."""
    c = CLAIMS[h.figure]
    if h.verdict not in VERDICTS:
        raise ValueError(f"figure {h.figure}: verdict {h.verdict!r} is not one of {VERDICTS}")
    return {
        "run": run,
        "study": study,
        "model": model,
        "figure": h.figure,
        "claim": c.claim,
        "paper": c.paper,
        "primary": c.primary,
        "sesoi": f"{c.sesoi:.3g} ({c.sesoi_basis})",
        "value": h.value,
        "ci95": h.ci_text(),
        "n": h.n,
        "verdict": h.verdict,
        "reason": h.reason,
        "gates": "\n".join(h.gates),
    }


def summarise(results: str | os.PathLike[str]) -> list[dict[str, str]]:
    """One row per (claim, model) whose figure JSON exists under ``results`` (results/<run>)."""
    run = Path(results).name
    found = {(r.study, r.model, r.figure): p for p in figure_jsons(results) for r in [figure_ref(p)]}
    rows = []
    for c in CLAIMS.values():
        for (study, model, figure), path in sorted(found.items()):
            if (study, figure) != (c.study, c.figure):
                continue
            data = json.loads(path.read_text())
            if "headline" not in data:
                raise ValueError(f"{path} has no headline: rerun its figure rule")
            rows.append(row(run, study, model, Headline.from_json(data["headline"])))
    return rows


def _esc(text: str) -> str:
    """Text safe inside an RST table cell."""
    out = str(text).replace("\\", "\\\\")
    for ch in "*`|_[]":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def to_rst(rows: Sequence[Mapping[str, str]], run: str, absent: Sequence[str], intro: str) -> str:
    """The report's landing page: the findings table first, then what is missing, then ``intro``."""
    title = f"Findings of run ``{run}``"
    # Snakemake's report centres its landing page vertically in a scrolling box, so a page
    # taller than the window loses its top (unreachable by scrolling): centre only what fits
    lines = [
        ".. raw:: html",
        "",
        "   <style>.flex.items-center.h-screen{align-items:flex-start!important}"
        ".flex.items-center.h-screen>*{margin-top:auto;margin-bottom:auto}</style>",
        "",
        title,
        "=" * len(title),
        "",
    ]
    if rows:
        lines += [
            "Each row: a paper's claim and its number, the comparison tested, this run's number with the 95% "
            "interval and n, and a verdict with its reason. reproduced: the effect is shown and reaches the "
            "smallest effect of interest (half the paper's effect, or a declared size where the paper gives "
            "none); smaller than the paper: the direction is shown, the size is not; absent: the interval lies "
            "inside +/- that smallest effect; reversed; inconclusive: the interval holds both 0 and that "
            "effect; not testable on this model: a precondition failed (below each study); collapse: the "
            "quality guard tripped; descriptive: no test. Each figure, its caption and its numbers are under "
            "the studies' categories (left).",
            "",
        ]
        for study in dict.fromkeys(r["study"] for r in rows):
            head = STUDIES[study].title if study in STUDIES else study
            lines += [head, "-" * len(head), ""]
            gates = list(dict.fromkeys(g for r in rows if r["study"] == study for g in r["gates"].split("\n") if g))
            if gates:
                lines += ["What this model can test:", ""] + [f"- {_esc(g)}" for g in gates] + [""]
            lines += [".. list-table::", "   :header-rows: 1", "   :widths: 22 18 40 20", ""]
            lines += ["   * - Claim", "     - Paper", "     - This run", "     - Verdict"]
            for r in (r for r in rows if r["study"] == study):
                run_cell = (
                    f"{r['model']}: {r['value']}" + (f"; 95% CI {r['ci95']}" if r["ci95"] else "") + f"; n = {r['n']}"
                )
                lines += [
                    f"   * - {_esc(r['claim'])}",
                    f"     - {_esc(r['paper'])}",
                    f"     - {_esc(run_cell)}",
                    f"     - **{_esc(r['verdict'])}**: {_esc(r['reason'])}",
                ]
            lines.append("")
    else:
        lines += ["No figure of this run tests a claim yet (no figure JSON under results/" + _esc(run) + ")."]
    if absent:
        lines += [
            "",
            f"Partial run: {len(absent)} figure(s) not made yet (the report shows what exists)::",
            "",
        ]
        lines += [f"    {p}" for p in absent]
    return "{% raw %}\n" + "\n".join(lines) + "\n\n{% endraw %}\n" + intro
