"""Snakemake entry point of rule digits_confidence: cotlens.digits.stages.confidence.run."""

from cotlens.digits.stages import confidence
from cotlens.pipeline.stage import from_snakemake

from_snakemake(confidence.run, snakemake)
