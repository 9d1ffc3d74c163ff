import glob
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
# No library progress bars in the logs ("Loading weights" redrawn with \r): the stages
# report their own progress, per batch with rate and ETA (cotlens.io.logs).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from cotlens.io.atomic import interrupted
from cotlens.io.codedeps import ImportCache, module_closure
from cotlens.errors import CotlensError
from cotlens.io.fingerprint import local_fingerprint
from cotlens.models.registry import resolve
from cotlens.models.shape import routed_experts
from cotlens.pipeline.stageparams import stage_params
from cotlens import paths
from cotlens.studies import STUDIES, figure_paths, study_models

for _name in config["active_models"] + config["experts"]["models"]:
    try:
        resolve(_name, config["models"])
    except CotlensError as _e:
        raise ValueError(f"invalid config: {_e}") from None
# the judge models (a registry name, or "": the rule set / the lexicon)
EXPERTS_JUDGE = config["experts"]["judge"]
NEURONS_JUDGE = config["neurons"]["discovery"]["judge"]
for _key, _judge in (
    ("experts.judge", EXPERTS_JUDGE),
    ("neurons.discovery.judge", NEURONS_JUDGE),
):
    if _judge and _judge not in config["models"]:
        raise ValueError(
            f"invalid config: {_key} is {_judge!r}, which is not a model of the registry "
            f"(models: {', '.join(config['models'])}); name one of them, or leave it empty for the rule set"
        )
_gsm8k = config["neurons"]["prompts"]["gsm8k_path"]
if "neurons" in config["studies"] and _gsm8k and not os.path.isfile(_gsm8k):
    raise ValueError(
        f"invalid config: neurons.prompts.gsm8k_path is {_gsm8k!r}, which is not a file; "
        "give a GSM8K JSONL file (relative to the working directory), or leave it empty for generated problems"
    )
for _name in config["experts"]["models"] if "experts" in config["studies"] else []:
    _pool = routed_experts(config["models"][_name], f"resources/models/{_name}")
    if _pool is not None and max(config["experts"]["effects"]["k"]) > _pool:
        raise ValueError(
            f"invalid config: experts.effects.k asks for {max(config['experts']['effects']['k'])} experts, but {_name} "
            f"routes to {_pool} (layers x experts); use k values up to {_pool}"
        )


if workflow.is_main_process and (
    _left := interrupted(RESULTS_DIR := f"results/{config['run']}")
):
    # a kill during `-R rule` leaves the rule's output missing and what was made from it in
    # place: Snakemake would say "Nothing to be done" (cotlens run forces these itself)
    print(
        f"warning: an interrupted run left {len(_left)} output(s) unfinished under {RESULTS_DIR}/: "
        f"{' '.join(map(str, _left))}; remake them and what depends on them with `cotlens run`, "
        f"or snakemake --forcerun {' '.join(map(str, _left))}",
        file=sys.stderr,
    )


def alternation(names):
    """A regex matching exactly these names (one that matches nothing if there are none)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


TRAINED = [m for m, e in config["models"].items() if e.get("source") == "train"]
TINY = [m for m, e in config["models"].items() if e.get("source") == "tiny"]
PREPARED = [m for m in config["models"] if m not in TRAINED + TINY]
# Every output of this configuration lies under results/<run>/ (config `run:`), so runs
# with other configs coexist; models and their checks in resources/ are shared.
RUN = config["run"]
RESULTS = paths.run_dir(RUN)
MODEL = "resources/models/{model}"


def model_dir(names):
    """MODEL for these models only (the rule that makes a model of this source)."""
    return MODEL.replace("{model}", f"{{model,{alternation(names)}}}")


CHECKS = "resources/checks/{model}.json"


wildcard_constraints:
    model=alternation(config["models"]),


# each file's imports by content, kept between parses (cotlens.io.codedeps.ImportCache)
IMPORTS = ImportCache(Path(".snakemake") / "cotlens" / "imports.json")


def code_deps(script):
    """Library files the script imports (transitively): edits to them rerun the rule.
    Relative to the working directory, so a checkout moved or copied elsewhere with its
    results reruns nothing (Snakemake records the set of input paths)."""
    return [os.path.relpath(p) for p in module_closure(SCRIPTS / script, SRC, IMPORTS)]


def cfg_of(rule):
    """The part of the config that makes the rule's tables (cotlens.pipeline.stageparams): hashed
    into their metadata, and checked against the current config by every reader."""
    return stage_params(rule, config)


def table(study, name):
    """A study's Parquet table: prompts per study, the rest per {model}."""
    return STUDIES[study].table(name, "{model}", RUN)


def log_path(rule, per="{model}"):
    return paths.log_path(RUN, rule, per)


def model_stage(script):
    """A model stage's inputs: its model's prepared directory and self-check report, and the
    library files ``script`` imports (``code``: an edit of them reruns the stage)."""
    code = code_deps(script)
    return lambda wc: {
        "model": MODEL.format(model=wc.model),
        "checks": CHECKS.format(model=wc.model),
        "code": code,
    }


def model_params(rule, judge=None):
    """A model stage's params: ``cfg``, the config part that makes its tables (hashed into
    their metadata), and ``runtime``, how to run it (dtype, device; a judge's answer cache).
    """
    runtime = config["runtime"] if judge is None else judge_runtime(judge)
    return {"cfg": cfg_of(rule), "runtime": runtime}


def model_entry(wildcards):
    return {wildcards.model: config["models"][wildcards.model]}


def model_content(wildcards):
    """The content fingerprint of a `local` model (cotlens.io.fingerprint; hashes
    cached by path, size and mtime): new weights at the same path rerun models_prepare
    and everything made from the model."""
    return local_fingerprint(config["models"][wildcards.model])


def compare_inputs(wildcards):
    """The figure JSONs of this run (what `all` makes) and of each other run in
    `compare.runs` (on disk: another configuration made them)."""
    files = [f for f in all_figures() if f.endswith(".json")]
    for run in config["compare"]["runs"]:
        if run == RUN:
            continue
        found = sorted(glob.glob(f"results/{run}/*/*/figures/*.json"))
        if not found:
            raise ValueError(
                f"invalid config: compare.runs names run {run!r}, which has no figures under results/{run}/; "
                "run its configuration first (make run CONFIG=...), or remove it from compare.runs"
            )
        files += found
    return {f"f{i}": f for i, f in enumerate(files)}


def compare_outputs():
    """The headlines of every run in one table, and its figure (PNG in the report, PDF, JSON)."""
    out = f"{RESULTS}/compare/headlines"
    png = report(f"{out}.png", caption="../report/compare.rst", category="Across runs")
    return {
        "table": f"{out}.parquet",
        "png": png,
        "pdf": f"{out}.pdf",
        "json": f"{out}.json",
    }


def all_figures():
    """Every figure (png, pdf, json, html) of every study in `studies`, for its models."""
    return figure_paths(config)


def figure_inputs(study):
    """The tables one figure of ``study`` reads (cotlens.studies), by name."""
    return lambda wc: {
        name: STUDIES[study].table(name, wc.model, RUN)
        for name in STUDIES[study].figures[wc.figure]
    }


def figure_outputs(study):
    """A figure's PNG and PDF, the JSON of its numbers, and the HTML of its tables; the PNG
    and the HTML go into the report, under the study and the model."""

    def path(ext):
        return paths.figure_path(RUN, study, "{model}", "{figure}", ext)

    def shown(ext, shows):
        labels = {"model": "{model}", "figure": "{figure}", "shows": shows}
        caption = f"../report/{study}.rst"
        return report(
            path(ext),
            caption=caption,
            category=STUDIES[study].title,
            subcategory="{model}",
            labels=labels,
        )

    return {
        "png": shown("png", "figure"),
        "pdf": path("pdf"),
        "json": path("json"),
        "html": shown("html", "numbers"),
    }


def figure_params(wildcards):
    return {**config["figures"], "figure": wildcards.figure, "model": wildcards.model}


def judge_model(name):
    """The judge model's directory when the config names one, else nothing."""
    return lambda wc: [f"resources/models/{name}"] if name else []


def judge_runtime(name):
    """The runtime section plus the judge's answer cache."""
    return {
        **config["runtime"],
        "judge_cache": f"resources/judge/{name or 'none'}.jsonl",
    }
