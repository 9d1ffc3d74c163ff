"""The report: one caption per figure, the findings summary and its landing page."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from docutils.core import publish_parts
from jinja2 import Environment

from cotlens.studies import STUDIES
from cotlens.summary import FINDINGS, VERDICTS, figure_html, normalise, summarise, to_rst

ROOT = Path(__file__).resolve().parents[2]


def _render(study: str, figure: str) -> str:
    text = (ROOT / "workflow" / "report" / f"{study}.rst").read_text()
    env = Environment(trim_blocks=True, lstrip_blocks=True)  # as Snakemake renders captions
    snakemake = SimpleNamespace(wildcards=SimpleNamespace(figure=figure, model="m"), config={})
    return env.from_string(text).render(snakemake=snakemake)


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_each_figure_gets_its_own_caption(study: str) -> None:
    names = list(STUDIES[study].figures)
    for name in names:
        text = _render(study, name)
        assert f"``{name}``:" in text  # its own paragraph
        assert not [o for o in names if o != name and f"``{o}``:" in text]  # and no other figure's
        assert "System Message" not in publish_parts(text, writer="html")["body"]  # valid RST


def _figures(tmp: Path, study: str, model: str, figure: str, data: dict[str, object]) -> None:
    d = tmp / "results" / "r1" / study / model / "figures"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{figure}.json").write_text(json.dumps(data))


def test_summary_reads_what_exists_and_the_page_leads_with_it(tmp_path: Path) -> None:
    _figures(
        tmp_path,
        "digits",
        "m",
        "digit_conditioning",
        {
            "cells_pooled": "5x5",
            "conditioning": {
                "unconditioned_last": 0.13,
                "conditioned_last": 0.43,
                "difference": 0.30,
                "ci95": [0.2, 0.4],
                "n": 24,
                "verdict": "reproduced",
            },
        },
    )
    rift = {"rift_layer": 23, "n_layers": 30, "relative_depth": 0.767, "p_vs_shuffled_layers": 0.01}
    _figures(tmp_path, "circuits", "m", "rift", {**rift, "verdict": "a step, but at 77% of the depth, not mid-depth"})
    rows = summarise(tmp_path / "results" / "r1")
    by = {r["figure"]: r for r in rows}
    assert set(by) == {"digit_conditioning", "rift"}  # only what exists
    assert by["digit_conditioning"]["value"] == "last digit 0.13 -> 0.43 (difference +0.30)"
    assert by["digit_conditioning"]["ci95"] == "[0.20, 0.40]" and by["digit_conditioning"]["verdict"] == "reproduced"
    assert by["rift"]["verdict"] == "not reproduced" and "block 23 of 30" in by["rift"]["value"]
    assert "block ~16 of 32" in by["rift"]["paper"]
    page = to_rst(rows, "r1", ["results/r1/digits/m/figures/digit_accuracy.json"], "The intro.\n")
    body = publish_parts(Environment().from_string(page).render(), writer="html")["body"]
    assert "System Message" not in body
    assert body.index("0.13 -&gt; 0.43") < body.index("The intro.")  # findings first
    assert "Partial run: 1 figure(s)" in body and "digit_accuracy.json" in body


def test_every_finding_names_a_figure_and_verdicts_are_four() -> None:
    for f in FINDINGS:
        assert f.figure in STUDIES[f.study].figures
    assert normalise("not detected at this n") == "inconclusive at this n"
    assert normalise("reversed") == "not reproduced" and normalise("reproduced") == "reproduced"
    assert len(VERDICTS) == 4


def test_figure_html_holds_the_numbers_and_record_tables() -> None:
    page = figure_html(
        "circuits", "m", "patch_heads", {"copy": {"n_pairs": 3}, "top_heads_table": [{"head": "L1H2", "mean nKL": 0.5}]}
    )
    assert "<td>copy.n_pairs</td><td>3</td>" in page
    assert "<th>head</th><th>mean nKL</th>" in page and "<td>L1H2</td><td>0.5</td>" in page
    assert "<script" not in figure_html("s", "m", "f", {"t": "<script>x</script>"})  # escaped
