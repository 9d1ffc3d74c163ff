"""Snakemake entry point of rule circuits_extract: cotlens.stages.circuits.extract.run."""

from cotlens.stages.circuits import extract
from cotlens.stages.common import from_snakemake

from_snakemake(extract.run, snakemake)
