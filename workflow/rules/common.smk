import os
import re
import sys
from pathlib import Path

SRC = Path(workflow.basedir) / "src"
SCRIPTS = Path(workflow.basedir) / "scripts"
sys.path.insert(0, str(SRC))
# Scripts import cotlens from this checkout in every environment (venv, --sdm conda, a
# SLURM job): the job's Snakemake reads this file again and its scripts inherit the path.
# (Set here, not required from the user, so there is nothing for `envvars:` to assert.)
_paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
os.environ.update(
    PYTHONPATH=os.pathsep.join([str(SRC)] + [p for p in _paths if p != str(SRC)])
)

from cotlens.codedeps import module_closure
from cotlens.errors import CotlensError
from cotlens.models.registry import resolve

STUDY = "prontoqa"
FIGURES = ["accuracy", "step_accuracy", "lens_heatmap"]
RES = f"results/{STUDY}"

for _name in config["active_models"] + config["experts"]["models"]:
    try:
        resolve(_name, config["models"])
    except CotlensError as _e:
        raise ValueError(f"invalid config: {_e}") from None


def alternation(names):
    """A regex matching exactly these names (one that matches nothing if there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


TRAINED = [m for m, e in config["models"].items() if e.get("source") == "train"]
PREPARED = [m for m in config["models"] if m not in TRAINED]


wildcard_constraints:
    model=alternation(config["models"]),


def code_deps(script):
    """Library files the script imports (transitively): edits to them rerun the rule."""
    return [str(p) for p in module_closure(SCRIPTS / script, SRC)]


def model_entry(wildcards):
    return {wildcards.model: config["models"][wildcards.model]}


DIGIT_FIGURES = ["digit_confidence", "digit_conditioning", "digit_accuracy"]
EXPERT_FIGURES = ["expert_map", "expert_switch", "expert_quality"]
NEURON_FIGURES = ["neuron_concepts", "neuron_ablation", "neuron_activation"]

# Study 1 figures and the stage outputs each one reads.
CIRCUIT_FIGURES = {
    "patch_heads": ["patching", "pairs"],
    "patch_positions": ["patching", "pairs"],
    "attribution": ["patching"],
    "sufficiency": ["circuit"],
    "rift": ["heads"],
    "answer_heads": ["heads"],
    "probe": ["probe"],
    "pathways": ["pathways", "pairs"],
}


def circuit_figure_inputs(wildcards):
    return {
        name: f"{RES}/{wildcards.model}/{name}.parquet"
        for name in CIRCUIT_FIGURES[wildcards.fig]
    }


def all_figures():
    """Every figure of every study in `studies`, for every active model."""
    out = []
    if "prontoqa" in config["studies"]:
        out += expand(
            f"{RES}/{{model}}/figures/{{fig}}.{{ext}}",
            model=config["active_models"],
            fig=FIGURES + list(CIRCUIT_FIGURES),
            ext=["png", "pdf"],
        )
    if "digits" in config["studies"]:
        out += expand(
            "results/digits/{model}/figures/{fig}.{ext}",
            model=config["active_models"],
            fig=DIGIT_FIGURES,
            ext=["png", "pdf"],
        )
    if "arith" in config["studies"]:
        out += expand(
            "results/arith/{model}/figures/{fig}.{ext}",
            model=config["active_models"],
            fig=NEURON_FIGURES,
            ext=["png", "pdf"],
        )
    if "experts" in config["studies"]:
        out += expand(
            "results/experts/{model}/figures/{fig}.{ext}",
            model=config["experts"]["models"],
            fig=EXPERT_FIGURES,
            ext=["png", "pdf"],
        )
    return out


def judge_model(wildcards):
    """The judge model's directory when arith.neurons.judge names one, else nothing."""
    name = config["arith"]["neurons"].get("judge", "")
    return [f"resources/models/{name}"] if name else []


def expert_judge_model(wildcards):
    """The refusal judge's directory when experts.judge names one, else nothing."""
    name = config["experts"].get("judge", "")
    return [f"resources/models/{name}"] if name else []


def expert_judge_cache(wildcards):
    return f"resources/judge/{config['experts'].get('judge') or 'none'}.jsonl"
