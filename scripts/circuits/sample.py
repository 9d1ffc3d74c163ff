"""Snakemake entry point of rule circuits_sample: cotlens.stages.circuits.sample.run."""

from cotlens.stages.circuits import sample
from cotlens.stages.common import from_snakemake

from_snakemake(sample.run, snakemake)
