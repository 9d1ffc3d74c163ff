"""Snakemake entry point of rule models_train: cotlens.models.stages.train.run."""

from cotlens.models.stages import train
from cotlens.pipeline.stage import from_snakemake

from_snakemake(train.run, snakemake)
