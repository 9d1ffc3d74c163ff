"""Snakemake entry point of rule experts_prompts: cotlens.stages.experts.prompts.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.experts import prompts

from_snakemake(prompts.run, snakemake)
