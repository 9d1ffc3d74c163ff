"""Snakemake entry point of rule digits_prompts: cotlens.digits.stages.prompts.run."""

from cotlens.digits.stages import prompts
from cotlens.pipeline.stage import from_snakemake

from_snakemake(prompts.run, snakemake)
