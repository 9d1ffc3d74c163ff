"""Snakemake entry point of rule models_prepare: cotlens.stages.models.prepare.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.models import prepare

from_snakemake(prepare.run, snakemake)
