"""Snakemake entry point of rule circuits_prompts: cotlens.stages.circuits.prompts.run."""

from cotlens.stages.circuits import prompts
from cotlens.stages.common import from_snakemake

from_snakemake(prompts.run, snakemake)
