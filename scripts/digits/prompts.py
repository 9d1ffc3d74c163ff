"""Snakemake entry point of rule digits_prompts: cotlens.stages.digits.prompts.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.digits import prompts

from_snakemake(prompts.run, snakemake)
