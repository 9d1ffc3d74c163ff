import re
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
SCRIPTS = Path(workflow.basedir) / "scripts"
sys.path.insert(0, str(SRC))

from cotlens.codedeps import module_closure
from cotlens.errors import CotlensError
from cotlens.models.registry import resolve

STUDY = "prontoqa"
FIGURES = ["accuracy", "step_accuracy", "lens_heatmap"]
RES = f"results/{STUDY}"

for _name in config["active_models"]:
    try:
        resolve(_name, config["models"])
    except CotlensError as _e:
        raise ValueError(f"invalid config: {_e}") from None


wildcard_constraints:
    model="|".join(re.escape(m) for m in config["models"]),


def code_deps(script):
    """Library files the script imports (transitively): edits to them rerun the rule."""
    return [str(p) for p in module_closure(SCRIPTS / script, SRC)]


def model_entry(wildcards):
    return {wildcards.model: config["models"][wildcards.model]}


def all_figures():
    return expand(
        f"{RES}/{{model}}/figures/{{fig}}.{{ext}}",
        model=config["active_models"],
        fig=FIGURES,
        ext=["png", "pdf"],
    )
