"""Snakemake entry point of rule neurons_prompts: cotlens.stages.neurons.prompts.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.neurons import prompts

from_snakemake(prompts.run, snakemake)
