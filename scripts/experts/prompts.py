"""Snakemake entry point of rule experts_prompts: cotlens.experts.stages.prompts.run."""

from cotlens.experts.stages import prompts
from cotlens.pipeline.stage import from_snakemake

from_snakemake(prompts.run, snakemake)
