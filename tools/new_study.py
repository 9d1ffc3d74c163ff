"""A new study's skeleton: its package, scripts, rules, report caption and config sections.

    python tools/new_study.py NAME [--root .]

What it writes is a small study that runs end to end (``docs/design.md``, "Adding a
study"): a prompt stage (fixed cloze prompts with their answers), one model stage
(``NAME_answer``: the model's own probability of each answer's first token, read from its
logits) and one descriptive figure (``NAME_answer_prob``). Replace the prompts, the method
and the figure with the study's own; the names, the stage contract, the tables, the cost
model and the rules are in place. It adds the study to ``studies:`` of ``config.yaml``
and ``.test/config.yaml`` and its section to them and to the config schema: those three
files are the only shared files a study touches.

Refuses a name that is taken or not a Python identifier, before writing anything.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path

from cotlens.io.atomic import write_text

FILES: dict[str, str] = {}

FILES[
    "src/cotlens/{name}/__init__.py"
] = '''"""Study {number} ({name}): the skeleton made by tools/new_study.py; say here what it reproduces."""
'''

FILES[
    "src/cotlens/{name}/study.py"
] = '''"""Study {number} ({name}), declared as data for ``cotlens.studies`` (which says what each name means)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

NUMBER = {number}
PAPER = "{name}: the paper this study reproduces (authors, venue, year: what it shows)"
TITLE = "Study {number}: {name}"
FIGURES: dict[str, tuple[str, ...]] = {{
    "{name}_answer_prob": ("prompts", "answers"),
}}
PARAMS: dict[str, Callable[[Mapping[str, Any]], Any]] = {{
    "{name}_prompts": lambda c: c["{name}"]["prompts"],
    "{name}_answer": lambda c: c["{name}"]["answer"],
}}
MODELS_KEY = "active_models"
'''

FILES[
    "src/cotlens/{name}/prompts.py"
] = '''"""Study {number}'s prompts: pure and torch-free (the same config gives the same rows)."""

from __future__ import annotations

import random
from dataclasses import dataclass

# cloze prompts and the word that completes them; the study's own prompts replace these
FACTS = (
    ("The sun rises in the", " east"),
    ("Water freezes at zero degrees", " Celsius"),
    ("The opposite of hot is", " cold"),
    ("Two plus two is", " four"),
    ("A week has seven", " days"),
    ("Cats and dogs are", " animals"),
)


@dataclass(frozen=True)
class Prompt:
    prompt: str
    answer: str


def generate(n: int, seed: int) -> list[Prompt]:
    """``n`` prompts drawn from :data:`FACTS` (with repeats past its length), in a seeded order."""
    rng = random.Random(seed)
    return [Prompt(*FACTS[rng.randrange(len(FACTS))]) for _ in range(n)]
'''

FILES[
    "src/cotlens/{name}/methods.py"
] = '''"""Study {number}'s method: the probability the model gives each answer's first token."""

from __future__ import annotations

from collections.abc import Sequence

import torch


@torch.no_grad()
def answer_probs(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], answers: Sequence[int], device: torch.device
) -> list[float]:
    """P(answer token | prompt) from the model's own logits at the prompt's last position,
    one sequence at a time (no padding, so nothing to mask)."""
    out = []
    for ids, ans in zip(prompts, answers, strict=True):
        logits = model(input_ids=torch.tensor([list(ids)], device=device)).logits[0, -1].float()
        out.append(float(torch.softmax(logits, -1)[ans]))
    return out
'''

FILES["src/cotlens/{name}/tables.py"] = '''"""Study {number}'s tables (documented in docs/design.md, "Parquet schemas").

``TABLES``: the tables a stage reads back, by ``{name}/<file stem>``: schema and row key
(collected by :func:`cotlens.io.schemas.tables`)."""

from __future__ import annotations

import pyarrow as pa

PROMPTS = pa.schema([("prompt_id", pa.int32()), ("prompt", pa.string()), ("answer", pa.string())])

ANSWERS = pa.schema(
    [
        ("prompt_id", pa.int32()),
        ("answer_token", pa.int32()),  # the answer's first token
        ("p_answer", pa.float64()),  # P(answer_token | prompt), the model's own softmax
    ]
)

TABLES: dict[str, tuple[pa.Schema, tuple[str, ...]]] = {{
    "{name}/prompts": (PROMPTS, ("prompt_id",)),
    "{name}/answers": (ANSWERS, ("prompt_id",)),
}}
'''

FILES[
    "src/cotlens/{name}/cost.py"
] = '''"""The cost of Study {number}'s model stages for ``cotlens plan`` (``cotlens.core.cost``)."""

from __future__ import annotations

from cotlens.core.cost import CostInputs, Work


def stages(st: CostInputs) -> dict[str, Work]:
    """The model work of each of the study's model stages (``cotlens plan``)."""
    n, prompt = st.prompts.n(), st.prompts.mean("prompt")
    return {{"{name}_answer": Work(calls=n, tokens=n * prompt, ctx=prompt / 2, readouts=n)}}
'''

FILES[
    "src/cotlens/{name}/findings.py"
] = '''"""Study {number}: the claims its figures test (``cotlens.core.verdicts.claims``); none yet:
its one figure is descriptive. A tested figure declares its ``Claim`` here."""

from __future__ import annotations

from cotlens.core.verdicts import claims

CLAIMS = claims()
'''

FILES[
    "src/cotlens/{name}/analysis.py"
] = '''"""Study {number}'s analysis: the numbers its figures report (no drawing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cotlens.io.parquet import read_table


def answer_summary(inputs: Mapping[str, str]) -> dict[str, Any]:
    """The probabilities of the answers, their count and their mean."""
    p = read_table(inputs["answers"]).column("p_answer").to_pylist()
    return {{"p": p, "n": len(p), "mean_p_answer": sum(p) / len(p) if p else float("nan")}}
'''

FILES["src/cotlens/{name}/figures.py"] = '''"""Study {number}'s figures: drawing only (``FIGURES``: figure -> plot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt

from cotlens.{name}.analysis import answer_summary
from cotlens.io import figures as base
from cotlens.io.figures import FigureFiles, Inputs


def {name}_answer_prob(inputs: Inputs, outputs: FigureFiles, model: str, dpi: int = 150) -> dict[str, Any]:
    """The model's probability of each prompt's answer (descriptive: no claim)."""
    s = answer_summary(inputs)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.hist(s["p"], bins=20, range=(0, 1), color="#4c72b0")
    ax.set_xlabel("P(answer | prompt)")
    ax.set_ylabel("prompts")
    ax.set_title(f"{{model}}: mean P(answer) {{s['mean_p_answer']:.3f}} over {{s['n']}} prompts")
    return {{"n": s["n"], "mean_p_answer": s["mean_p_answer"], "drawn_titles": base.save(fig, outputs, dpi)}}


FIGURES: dict[str, Callable[[Inputs, FigureFiles, str, int], dict[str, Any]]] = {{
    "{name}_answer_prob": {name}_answer_prob,
}}
'''

FILES[
    "src/cotlens/{name}/stages/__init__.py"
] = '''"""Study {number}'s stages: one module per rule, ``run(inputs, outputs, params, runtime, threads)``."""
'''

FILES[
    "src/cotlens/{name}/stages/prompts.py"
] = '''"""Stage ``{name}_prompts``: the prompt set as Parquet (torch-free)."""

from __future__ import annotations

from cotlens.{name} import tables
from cotlens.{name}.prompts import generate
from cotlens.io.parquet import Columns, RunMeta, write_table
from cotlens.pipeline.stage import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    cols = Columns(tables.PROMPTS)
    for i, r in enumerate(generate(int(params["n_prompts"]), int(params["seed"]))):
        cols.add(prompt_id=i, prompt=r.prompt, answer=r.answer)
    write_table(cols.table(), outputs["prompts"], RunMeta.of("{name}_prompts", params))
    return len(cols)
'''

FILES[
    "src/cotlens/{name}/stages/answer.py"
] = '''"""Stage ``{name}_answer``: the model's probability of each prompt's answer."""

from __future__ import annotations

from cotlens.{name} import tables
from cotlens.{name}.methods import answer_probs
from cotlens.io.parquet import Columns, read_table, write_table
from cotlens.models.loading import load_for_stage
from cotlens.pipeline.stage import Params, Paths, model_meta


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> int:
    rows = read_table(inputs["prompts"]).to_pylist()
    lm = load_for_stage(inputs["model"], runtime, threads)
    tok = lm.tokenizer
    prompts = [tok(r["prompt"])["input_ids"] for r in rows]
    answers = [tok(r["answer"], add_special_tokens=False)["input_ids"][0] for r in rows]
    cols = Columns(tables.ANSWERS)
    for r, a, p in zip(rows, answers, answer_probs(lm.model, prompts, answers, lm.device), strict=True):
        cols.add(prompt_id=r["prompt_id"], answer_token=a, p_answer=p)
    write_table(cols.table(), outputs["answers"], model_meta("{name}_answer", params, lm.manifest, lm.dtype))
    return len(rows)
'''

FILES[
    "src/cotlens/{name}/stages/figure.py"
] = '''"""Stage ``{name}_figure``: one figure of the study (see :data:`cotlens.{name}.figures.FIGURES`)."""

from __future__ import annotations

from typing import Any

from cotlens.{name} import figures as plots
from cotlens.{name} import findings
from cotlens.pipeline.draw import draw_figure
from cotlens.pipeline.stage import Params, Paths


def run(inputs: Paths, outputs: Paths, params: Params, runtime: Params, threads: int) -> dict[str, Any]:
    return draw_figure(plots.FIGURES, findings.CLAIMS, inputs, outputs, params)
'''

for _stage in ("prompts", "answer", "figure"):
    FILES[
        f"scripts/{{name}}/{_stage}.py"
    ] = f'''"""Snakemake entry point of rule {{name}}_{_stage}: cotlens.{{name}}.stages.{_stage}.run."""

from cotlens.{{name}}.stages import {_stage}
from cotlens.pipeline.stage import from_snakemake

from_snakemake({_stage}.run, snakemake)
'''

FILES["workflow/rules/{name}.smk"] = """# Study {number} ({name}; cotlens.{name}.study): prompts -> answer.
rule {name}_prompts:
    input:
        code=code_deps("{name}/prompts.py"),
    output:
        prompts=table("{name}", "prompts"),
    log:
        log_path("{name}_prompts", per="{name}"),
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=cfg_of("{name}_prompts"),
    script:
        "../../scripts/{name}/prompts.py"


rule {name}_answer:
    input:
        unpack(model_stage("{name}/answer.py")),
        prompts=table("{name}", "prompts"),
    output:
        answers=table("{name}", "answers"),
    log:
        log_path("{name}_answer"),
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("{name}_answer"),
    script:
        "../../scripts/{name}/answer.py"
"""

FILES[
    "workflow/report/{name}.rst"
] = """Study {number} ({name}): the model's probability of each prompt's answer. Replace with what the figure shows.
"""

SCHEMA = """  {name}:
    description: "Study {number} ({name}): made by tools/new_study.py"
    type: object
    additionalProperties: false
    required: [prompts, answer]
    properties:
      prompts:
        description: "the prompt set ({name}_prompts)"
        type: object
        additionalProperties: false
        required: [seed, n_prompts]
        properties:
          seed: {{description: "the order the prompts are drawn in", type: integer}}
          n_prompts: {{description: "how many prompts", type: integer, minimum: 1}}
      answer:
        description: "the answer stage ({name}_answer): no settings yet"
        type: object
        additionalProperties: false
        properties: {{}}
"""

CONFIG = """
# Study {number} ({name}): made by tools/new_study.py
{name}:
  prompts: {{seed: 0, n_prompts: {n}}}
  answer: {{}}
"""


def refuse(msg: str) -> int:
    print(f"new_study: {msg}", file=sys.stderr)
    return 2


def add_to_list(text: str, pattern: str, name: str, path: Path) -> str:
    """Append ``name`` to the one-line YAML list that ``pattern`` (one group: the items) matches."""
    new, n = re.subn(
        pattern, lambda m: m.group(0).replace(m.group(1), f"{m.group(1)}, {name}"), text, count=1, flags=re.M
    )
    if n != 1:
        raise SystemExit(refuse(f"{path}: no line matches {pattern!r}; add {name!r} by hand"))
    return new


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", help="the study's one name: config section, package, rules, results directory")
    ap.add_argument("--root", type=Path, default=Path("."), help="the checkout (default: here)")
    a = ap.parse_args()
    name, root = a.name, a.root.resolve()
    if not re.fullmatch(r"[a-z][a-z0-9]*", name) or keyword.iskeyword(name):
        return refuse(f"{name!r} is not a name: lower-case letters and digits, a letter first")
    pkg = root / "src" / "cotlens"
    if not (pkg / "studies.py").is_file():
        return refuse(f"{root} is not a cotlens checkout (no src/cotlens/studies.py)")
    if (pkg / name).exists() or (root / "scripts" / name).exists():
        return refuse(f"{name!r} is taken (src/cotlens/{name} or scripts/{name} exists)")
    numbers = [
        int(m.group(1)) for d in pkg.glob("*/study.py") if (m := re.search(r"^NUMBER = (\d+)", d.read_text(), re.M))
    ]
    values = {"name": name, "number": max(numbers, default=0) + 1, "n": 8}
    schema_p, config_p, test_p = (
        root / "workflow" / "schemas" / "config.schema.yaml",
        root / "config.yaml",
        root / ".test" / "config.yaml",
    )
    schema = add_to_list(schema_p.read_text(), r"^    items: \{enum: \[([^\]]*)\]\}", name, schema_p)
    schema = add_to_list(schema, r"^required: \[([^\]]*)\]", name, schema_p)
    schema = schema.rstrip("\n") + "\n" + SCHEMA.format(**values)
    config = add_to_list(config_p.read_text(), r"^studies: \[([^\]]*)\]", name, config_p) + CONFIG.format(**values)
    test = add_to_list(test_p.read_text(), r"^studies: \[([^\]]*)\]", name, test_p) + CONFIG.format(
        **{**values, "n": 4}
    )
    for rel, template in FILES.items():
        path = root / rel.format(name=name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, template.format(**values))
    for path, text in ((schema_p, schema), (config_p, config), (test_p, test)):
        write_text(path, text)  # atomic: a crash leaves each config file whole
    print(
        f"study {values['number']} {name!r}: {len(FILES)} files written; {name} added to config.yaml, .test/config.yaml and the schema"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
