"""Snakemake entry point of rule models_train: cotlens.stages.models.train.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.models import train

from_snakemake(train.run, snakemake)
