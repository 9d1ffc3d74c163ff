"""The figure stages' shared step: draw one figure, write its numbers (JSON) and its
report tables (HTML). Only the figure stages import it, so editing the report tables
reruns figures, not models; a study's claims come from its own figure stage
(``cotlens.<study>.findings``), so editing one study's claims reruns that study's figures."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cotlens.core.verdicts import NOT_TESTABLE, Claim, Headline
from cotlens.io import figures as base
from cotlens.io.atomic import write_text
from cotlens.paths import figure_ref
from cotlens.pipeline.stage import Params, Paths, refusal

Figure = Callable[[Paths, Sequence[str], str, int], dict[str, Any]]


def draw_figure(
    figures: Mapping[str, Figure], claims: Mapping[str, Claim], inputs: Paths, outputs: Paths, params: Params
) -> dict[str, Any]:
    """One figure of a study: its plot function draws ``outputs`` png and pdf and returns
    the numbers its title reports, written here to ``outputs["json"]`` and, as tables for
    the report, to ``outputs["html"]`` (:func:`figure_html`). ``claims``: the study's
    (``cotlens.<study>.findings.CLAIMS``), for the headline of a refused figure."""
    name = str(params["figure"])
    if name not in figures:
        raise ValueError(f"unknown figure {name!r}; known: {sorted(figures)}")
    paths, model, dpi = [outputs["png"], outputs["pdf"]], str(params["model"]), int(params["dpi"])
    why = refusal(inputs)
    numbers = (
        refused_figure(name, claims.get(name), paths, model, dpi, why)
        if why
        else figures[name](inputs, paths, model, dpi)
    )
    text = json.dumps(numbers, indent=1, sort_keys=True, default=str)
    write_text(outputs["json"], text + "\n")
    study = figure_ref(outputs["json"]).study
    write_text(outputs["html"], figure_html(study, str(params["model"]), name, json.loads(text)))
    return numbers


def refused_figure(
    figure: str, claim: Claim | None, paths: Sequence[str], model: str, dpi: int, why: str
) -> dict[str, Any]:
    """The figure of a method a stage refused on this model: its title, its JSON and (for a
    tested figure) its summary row say "not testable on this model" and why."""
    h = Headline(figure, "not computed", None, None, "0", NOT_TESTABLE, why) if claim else None
    title = h.title(model) if h else f"{model}: not computed\n({why})"
    drawn = base.refused(paths, title, dpi)
    return {"refused": why, "drawn_titles": drawn, **({"headline": h.to_json()} if h else {})}


def figure_html(study: str, model: str, figure: str, numbers: Mapping[str, Any], caption: str = "") -> str:
    """One figure's numbers for the report: the scalars (dotted keys) in one table, and each
    list of records (e.g. the top heads per subtask, the concept neurons) as its own table."""
    from cotlens.pipeline.compare import flatten

    def table(rows: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    scalars = [{"key": k, "value": f"{v:.4g}" if v is not None else t or ""} for k, v, t in flatten(numbers)]
    parts = [
        f"<h2>{html.escape(figure)} &middot; {html.escape(model)}</h2>",
        f"<p>{html.escape(caption)}</p>" if caption else "",
        "<h3>Numbers</h3>",
        table(scalars, ("key", "value")),
    ]
    for key, value in sorted(numbers.items()):
        if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
            cols = list(dict.fromkeys(c for r in value for c in r))
            parts += [f"<h3>{html.escape(key)}</h3>", table(value, cols)]
    style = (
        "body{font-family:sans-serif;font-size:13px;margin:1em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}th{background:#f0f0f0}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(study)} {html.escape(figure)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return ", ".join(_cell(x) for x in v)
    return "" if v is None else str(v)
