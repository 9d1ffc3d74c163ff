from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/circuits.smk"
include: "workflow/rules/neurons.smk"
include: "workflow/rules/digits.smk"
include: "workflow/rules/experts.smk"
include: "workflow/rules/figures.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        all_figures(),
