"""Snakemake entry point of rule models_check: cotlens.stages.models.check.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.models import check

from_snakemake(check.run, snakemake)
