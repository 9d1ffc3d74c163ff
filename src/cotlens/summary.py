"""The findings of a run, from its figure JSONs: the report's landing page and a table.

For every figure that tests a paper's claim (``FINDINGS``), one row: the claim, the
paper's number, this run's number with its 95% interval and n, and a verdict:

- ``reproduced``: the interval (or permutation test) shows the claimed effect;
- ``not reproduced``: it shows the opposite, or the effect somewhere the paper does not
  put it (a rift, but not at mid-depth);
- ``inconclusive at this n``: the interval holds "no effect" (more prompts may decide);
- ``descriptive``: the figure reports what was found, with no test (concept neurons).

Reads ``results/<run>/<study>/<model>/figures/<figure>.json`` only, whatever exists: a
partial run gets the rows of the figures it has and a list of the missing ones.
Torch-free; ``figure_html`` renders one figure's numbers and tables for the report.
"""

from __future__ import annotations

import glob
import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from cotlens.studies import STUDIES

VERDICTS = ("reproduced", "not reproduced", "inconclusive at this n", "descriptive")

SUMMARY = pa.schema(
    [
        ("run", pa.string()),
        ("study", pa.string()),
        ("model", pa.string()),
        ("figure", pa.string()),
        ("claim", pa.string()),  # the paper's claim
        ("paper", pa.string()),  # the paper's number, model and setting
        ("value", pa.string()),  # this run's number, in words
        ("ci95", pa.string()),  # its 95% interval ("" where the test is a permutation p or none)
        ("n", pa.string()),  # what the number is over
        ("verdict", pa.string()),  # one of VERDICTS
    ]
)


@dataclass(frozen=True)
class Reading:
    value: str
    ci95: str
    n: str
    verdict: str


@dataclass(frozen=True)
class Finding:
    study: str
    figure: str
    claim: str
    paper: str
    read: Callable[[Mapping[str, Any]], Reading]


def normalise(verdict: str) -> str:
    """A figure's verdict in the summary's words (``cotlens.stats.verdict`` and the rest)."""
    v = verdict.strip().lower()
    if v == "reproduced":
        return "reproduced"
    if v == "reversed" or v.startswith("a step, but"):
        return "not reproduced"
    return "inconclusive at this n"  # not detected at this n; a collapse the quality guard caught


def _ci(pair: Sequence[float] | None, fmt: str = "{:.2f}") -> str:
    return f"[{fmt.format(pair[0])}, {fmt.format(pair[1])}]" if pair else ""


def _tested(v: Mapping[str, Any], value: str, n: str, ci: str = "ci95") -> Reading:
    """A figure's tested effect ``v`` (its interval under ``ci``, its verdict) in words."""
    return Reading(value, _ci(v.get(ci)), n, normalise(str(v["verdict"])))


def _rift(d: Mapping[str, Any]) -> Reading:
    return Reading(
        f"block {d['rift_layer']} of {d['n_layers']} ({d['relative_depth']:.0%} depth), "
        f"step p = {d['p_vs_shuffled_layers']:.3f} vs shuffled layers",
        "",
        f"{d['n_layers']} layers",
        normalise(str(d["verdict"])),
    )


def _answer_heads(d: Mapping[str, Any]) -> Reading:
    late, att = normalise(str(d["late_verdict"])), normalise(str(d["attention_verdict"]))
    both = "reproduced" if late == att == "reproduced" else late if late != "reproduced" else att
    return Reading(
        f"{d['upper_half_share']:.0%} of |DLA| in the upper half; top-5 heads' attention to the answer "
        f"{d['attn_top5']:.2f} vs {d['attn_all']:.2f} all heads (p = {d['p_perm']})",
        _ci(d.get("upper_half_ci95")),
        f"{d['n_pairs']} pairs",
        both,
    )


def _sufficiency(d: Mapping[str, Any]) -> Reading:
    k = d.get("smallest_k_beating_random")
    tested = {kk: v for kk, v in d.get("per_k", {}).items() if "verdict" in v}
    n = next((v["n_pairs"] for v in d.get("per_k", {}).values()), 0)
    if k is not None:
        best = d["per_k"][str(k)]
        return Reading(
            f"top-{k} heads agree with the clean answer {best['top']:.2f} vs random {best['random']:.2f}",
            _ci(best.get("ci95")),
            f"{n} pairs",
            "reproduced",
        )
    gaps = ", ".join(f"k={kk}: {v['top_minus_random']:+.2f}" for kk, v in tested.items())
    reversed_ = any(normalise(v["verdict"]) == "not reproduced" for v in tested.values())
    return Reading(
        f"no k where top-k beats random k ({gaps})",
        "",
        f"{n} pairs",
        "not reproduced" if reversed_ else "inconclusive at this n",
    )


def _pathways(d: Mapping[str, Any]) -> Reading:
    both = d.get("both_pathways_in") or []
    cells = [(k, v) for k, v in d.items() if isinstance(v, Mapping) and "verdict" in v]
    parts = [f"{k} {v['mean']:.2f}" for k, v in cells if not k.endswith("context")]
    return Reading(
        f"both pathways in {', '.join(both) if both else 'no subtask'} (nKL recovered: {'; '.join(parts)})",
        "",
        f"{d.get('pairs_used', 0)} pairs",
        "reproduced" if both else "inconclusive at this n",
    )


def _probe(d: Mapping[str, Any]) -> Reading:
    value = (
        f"layer {d['selected_layer']} (picked by cross-validation): held-out {d['test_accuracy']:.2f}, "
        f"control {d['control_test_accuracy']:.2f}, selectivity {d['selectivity']:+.2f}"
    )
    return _tested(d, value, f"{d['n_test']} held-out pairs", ci="test_ci95")


def _concepts(d: Mapping[str, Any]) -> Reading:
    by = ", ".join(f"{k} {v}" for k, v in sorted(d.get("by_concept", {}).items()))
    return Reading(
        f"{d['concept_neurons']} concept neurons ({by or 'none'})",
        "",
        f"{d['candidates']} candidates",
        "descriptive",
    )


def _ablation(d: Mapping[str, Any]) -> Reading:
    verdicts = d.get("verdicts", {})
    key = next((k for k in verdicts if k.startswith("concept") and "zero" in k), next(iter(verdicts), None))
    if key is None:
        return Reading("no ablation tested", "", "", "inconclusive at this n")
    v = verdicts[key]  # the figure tests the claimed sign (a drop): a rise reads "reversed"
    return _tested(v, f"{key}: accuracy {v['difference']:+.2f}", f"{v['n']} problems")


def _activation(d: Mapping[str, Any]) -> Reading:
    value = f"Pearson r = {d['pearson_r']:+.2f} between activation level and accuracy over CoT variants"
    n = f"{len(d.get('accuracy', {}))} variants x {d.get('n_problems', 0)} problems"
    return _tested(d, value, n, ci="pearson_ci95")


def _first_last(d: Mapping[str, Any]) -> Reading:
    v = d["first_minus_last"]
    first, last = v["unconditioned_first"], v["unconditioned_last"]
    value = f"first {first:.2f} vs last {last:.2f} (difference {v['difference']:+.2f})"
    return _tested(v, value, f"{v['n']} problems ({d.get('cells_pooled', '')})")


def _conditioning(d: Mapping[str, Any]) -> Reading:
    v = d["conditioning"]
    alone, given = v["unconditioned_last"], v["conditioned_last"]
    value = f"last digit {alone:.2f} -> {given:.2f} (difference {v['difference']:+.2f})"
    return _tested(v, value, f"{v['n']} problems ({d.get('cells_pooled', '')})")


def _switch(d: Mapping[str, Any]) -> Reading:
    verdicts = d.get("verdicts", {})
    key = next((k for k in sorted(verdicts) if k.startswith("off")), next(iter(verdicts), None))
    if key is None:
        return Reading("no switch tested", "", "", "inconclusive at this n")
    v = verdicts[key]
    others = "; ".join(f"{k}: {normalise(str(x['verdict']))}" for k, x in sorted(verdicts.items()) if k != key)
    value = (
        f"{key}: refusals {v['baseline']:.2f} -> {v['top']:.2f}, effect beyond random {v['effect']:+.2f}, "
        f"p = {v['p_vs_random']} vs random experts" + (f" ({others})" if others else "")
    )
    return _tested(v, value, f"{v['n_prompts']} prompts", ci="top_ci95")


FINDINGS: tuple[Finding, ...] = (
    Finding(
        "circuits",
        "rift",
        "in-context reading steps up at mid-depth (the functional rift)",
        "block ~16 of 32 (Llama-2-7B)",
        _rift,
    ),
    Finding(
        "circuits",
        "answer_heads",
        "answer-writing heads sit late and attend to the answer token",
        "late layers (Llama-2-7B)",
        _answer_heads,
    ),
    Finding(
        "circuits",
        "sufficiency",
        "a small set of heads suffices; top-k beats random k",
        "a few heads per subtask suffice (Llama-2-7B)",
        _sufficiency,
    ),
    Finding(
        "circuits",
        "pathways",
        "the answer is read in parallel from the question and from the CoT",
        "both pathways (Llama-2-7B)",
        _pathways,
    ),
    Finding(
        "circuits",
        "probe",
        "relation information is linearly readable, above a control task",
        "no number in the paper; selectivity > 0 (Hewitt & Liang)",
        _probe,
    ),
    Finding(
        "neurons",
        "neuron_concepts",
        "FFN neurons project to operator and connective concepts",
        "concept neurons found (Llama-2-7B)",
        _concepts,
    ),
    Finding(
        "neurons",
        "neuron_ablation",
        "ablating concept neurons hurts accuracy more than random neurons",
        "accuracy drops (Llama-2-7B, GSM8K)",
        _ablation,
    ),
    Finding(
        "neurons",
        "neuron_activation",
        "activation level tracks accuracy across CoT prompt variants",
        "positive correlation (Llama-2-7B)",
        _activation,
    ),
    Finding(
        "digits",
        "digit_confidence",
        "the first digit of a product is more confident than the last",
        "first confident, last not (Llama-2-13B, Mistral-7B)",
        _first_last,
    ),
    Finding(
        "digits",
        "digit_conditioning",
        "the correct higher digits raise last-digit confidence",
        "0.13 -> 0.43 (Llama-2-13B, 5x5); 0.22 -> 0.55 (Mistral-7B)",
        _conditioning,
    ),
    Finding(
        "experts",
        "expert_switch",
        "switching off the behaviour's top experts cuts it far more than random experts",
        "top 10 experts off: refusals -52%, random little (DeepSeek-R1)",
        _switch,
    ),
)


def figure_jsons(results: str | os.PathLike[str]) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(os.path.join(results, "*", "*", "figures", "*.json")))


def summarise(results: str | os.PathLike[str]) -> list[dict[str, str]]:
    """One row per (finding, model) whose figure JSON exists under ``results`` (results/<run>)."""
    run = Path(results).name
    found = {(p.parts[-4], p.parts[-3], p.stem): p for p in figure_jsons(results)}
    rows = []
    for f in FINDINGS:
        for (study, model, figure), path in sorted(found.items()):
            if (study, figure) != (f.study, f.figure):
                continue
            r = f.read(json.loads(path.read_text()))
            if r.verdict not in VERDICTS:
                raise ValueError(f"{path}: verdict {r.verdict!r} is not one of {VERDICTS}")
            where = {"run": run, "study": study, "model": model, "figure": figure}
            rows.append({**where, "claim": f.claim, "paper": f.paper, **asdict(r)})
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
            "Each row: a paper's claim and its number beside this run's, with the 95% interval, n and a verdict "
            "(reproduced: the interval or permutation test shows the claimed effect; not reproduced: it shows "
            "the opposite, or the effect elsewhere; inconclusive at this n: the interval holds no effect, more "
            "prompts may decide; descriptive: no test). Each figure, its caption and its numbers are under "
            "the studies' categories (left).",
            "",
        ]
        for study in dict.fromkeys(r["study"] for r in rows):
            head = STUDIES[study].title if study in STUDIES else study
            lines += [head, "-" * len(head), "", ".. list-table::", "   :header-rows: 1", "   :widths: 25 20 40 15", ""]
            lines += ["   * - Claim", "     - Paper", "     - This run", "     - Verdict"]
            for r in (r for r in rows if r["study"] == study):
                run_cell = (
                    f"{r['model']}: {r['value']}" + (f"; 95% CI {r['ci95']}" if r["ci95"] else "") + f"; n = {r['n']}"
                )
                lines += [
                    f"   * - {_esc(r['claim'])}",
                    f"     - {_esc(r['paper'])}",
                    f"     - {_esc(run_cell)}",
                    f"     - **{_esc(r['verdict'])}**",
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


def figure_html(study: str, model: str, figure: str, numbers: Mapping[str, Any], caption: str = "") -> str:
    """One figure's numbers for the report: the scalars (dotted keys) in one table, and each
    list of records (e.g. the top heads per subtask, the concept neurons) as its own table."""
    from cotlens.compare import flatten

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
