"""Snakemake entry point of rule circuits_extract: cotlens.circuits.stages.extract.run."""

from cotlens.circuits.stages import extract
from cotlens.pipeline.stage import from_snakemake

from_snakemake(extract.run, snakemake)
