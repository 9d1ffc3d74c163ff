import os
import sys

from snakemake.utils import min_version, validate

min_version("9.0")
sys.path.insert(0, f"{workflow.basedir}/src")
from cotlens.pipeline.configcheck import check_config, check_files, check_names

# Size, YAML syntax, alias bombs and cycles, key types: one clear error naming the file,
# before anything walks the config (cotlens.pipeline.configcheck).
CONFIG_FILES = ["config.yaml", *workflow.overwrite_configfiles]
check_files(CONFIG_FILES)


configfile: "config.yaml"


check_config(config, CONFIG_FILES)
check_names(config, CONFIG_FILES)  # run and model names: one path component each
validate(config, "workflow/schemas/config.schema.yaml")


# The landing page: the findings summary `cotlens report` writes from the figure JSONs
# (results/<run>/report/summary.rst, then this intro); a plain --report gets the intro.
report: os.environ.get("COTLENS_REPORT_TEXT") or "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"


# each study's rules (cotlens.studies finds the studies: src/cotlens/<study>/study.py)
for _study in STUDIES:

    include: f"workflow/rules/{_study}.smk"


include: "workflow/rules/figures.smk"
include: "workflow/rules/compare.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_figures(),
        rules.compare_runs.output if config["compare"]["runs"] else [],
