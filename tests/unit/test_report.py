"""The report: one caption per figure, the findings summary and its landing page."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from docutils.core import publish_parts
from jinja2 import Environment

from cotlens.core.verdicts import VERDICTS, Headline
from cotlens.pipeline.draw import figure_html
from cotlens.pipeline.summary import CLAIMS, SUMMARY, summarise, to_rst
from cotlens.studies import STUDIES

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
    cond = Headline(
        "digit_conditioning",
        "last digit 0.13 -> 0.43, +0.30",
        0.30,
        (0.2, 0.4),
        "24 problems",
        "reproduced",
        "why",
        ("1x1 products: 8/8 (passed)", "random sets: 99 (26 collapsed; needs 99) (passed)"),
    )
    rift = Headline(
        "rift",
        "step at block 23 of 30",
        0.767,
        (0.7, 0.83),
        "30 layers",
        "absent",
        "outside mid-depth",
        ("answer accuracy: 0.42 (failed)",),
    )
    _figures(tmp_path, "digits", "m", "digit_conditioning", {"headline": cond.to_json(), "other": 1})
    _figures(tmp_path, "circuits", "m", "rift", {"headline": rift.to_json()})
    rows = summarise(tmp_path / "results" / "r1")
    by = {r["figure"]: r for r in rows}
    assert set(by) == {"digit_conditioning", "rift"}  # only what exists
    assert set(rows[0]) == set(SUMMARY.names)
    assert by["digit_conditioning"]["value"] == "last digit 0.13 -> 0.43, +0.30"
    assert (
        by["digit_conditioning"]["ci95"] == "[+0.200, +0.400]" and by["digit_conditioning"]["verdict"] == "reproduced"
    )
    assert by["digit_conditioning"]["sesoi"].startswith("0.15 (half the paper's")
    assert by["rift"]["verdict"] == "absent" and by["rift"]["reason"] == "outside mid-depth"
    assert "block ~16 of 32" in by["rift"]["paper"]
    page = to_rst(rows, "r1", ["results/r1/digits/m/figures/digit_accuracy.json"], "The intro.\n")
    body = publish_parts(Environment().from_string(page).render(), writer="html")["body"]
    assert "System Message" not in body
    assert body.index("0.13 -&gt; 0.43") < body.index("The intro.")  # findings first
    assert "What this model can test" in body and "answer accuracy: 0.42 (failed)" in body
    assert "random sets: 99 (26 collapsed; needs 99) (passed)" in body  # a gate's own "; " does not split it
    assert "Partial run: 1 figure(s)" in body and "digit_accuracy.json" in body


def test_a_figure_json_without_a_headline_is_refused(tmp_path: Path) -> None:
    _figures(tmp_path, "digits", "m", "digit_conditioning", {"conditioning": {"verdict": "reproduced"}})
    with pytest.raises(ValueError, match="no headline"):
        summarise(tmp_path / "results" / "r1")


def test_every_claim_names_a_figure_and_a_positive_smallest_effect() -> None:
    for c in CLAIMS.values():
        assert c.figure in STUDIES[c.study].figures
        assert c.sesoi > 0 and c.sesoi_basis and c.primary
        if c.paper_effect is not None and "half" in c.sesoi_basis:
            assert c.sesoi == pytest.approx(c.paper_effect / 2)
    assert len(VERDICTS) == 8


def test_figure_html_holds_the_numbers_and_record_tables() -> None:
    page = figure_html(
        "circuits", "m", "patch_heads", {"copy": {"n_pairs": 3}, "top_heads_table": [{"head": "L1H2", "mean nKL": 0.5}]}
    )
    assert "<td>copy.n_pairs</td><td>3</td>" in page
    assert "<th>head</th><th>mean nKL</th>" in page and "<td>L1H2</td><td>0.5</td>" in page
    assert "<script" not in figure_html("s", "m", "f", {"t": "<script>x</script>"})  # escaped
