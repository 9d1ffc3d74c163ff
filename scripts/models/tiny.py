"""Snakemake entry point of rule models_tiny: cotlens.stages.models.tiny.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.models import tiny

from_snakemake(tiny.run, snakemake)
