"""Snakemake entry point of rule neurons_prompts: cotlens.neurons.stages.prompts.run."""

from cotlens.neurons.stages import prompts
from cotlens.pipeline.stage import from_snakemake

from_snakemake(prompts.run, snakemake)
