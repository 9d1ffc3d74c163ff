"""Snakemake entry point of rule circuits_prompts: cotlens.circuits.stages.prompts.run."""

from cotlens.circuits.stages import prompts
from cotlens.pipeline.stage import from_snakemake

from_snakemake(prompts.run, snakemake)
