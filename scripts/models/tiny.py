"""Snakemake entry point of rule models_tiny: cotlens.models.stages.tiny.run."""

from cotlens.models.stages import tiny
from cotlens.pipeline.stage import from_snakemake

from_snakemake(tiny.run, snakemake)
