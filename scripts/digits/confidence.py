"""Snakemake entry point of rule digits_confidence: cotlens.stages.digits.confidence.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.digits import confidence

from_snakemake(confidence.run, snakemake)
