"""Snakemake entry point of rule models_prepare: cotlens.models.stages.prepare.run."""

from cotlens.models.stages import prepare
from cotlens.pipeline.stage import from_snakemake

from_snakemake(prepare.run, snakemake)
