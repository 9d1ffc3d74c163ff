"""Snakemake entry point of rule models_check: cotlens.models.stages.check.run."""

from cotlens.models.stages import check
from cotlens.pipeline.stage import from_snakemake

from_snakemake(check.run, snakemake)
