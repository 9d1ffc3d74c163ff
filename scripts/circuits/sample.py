"""Snakemake entry point of rule circuits_sample: cotlens.circuits.stages.sample.run."""

from cotlens.circuits.stages import sample
from cotlens.pipeline.stage import from_snakemake

from_snakemake(sample.run, snakemake)
