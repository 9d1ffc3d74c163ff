"""Snakemake entry point of rule circuits_pairs: cotlens.circuits.stages.pairs.run."""

from cotlens.circuits.stages import pairs
from cotlens.pipeline.stage import from_snakemake

from_snakemake(pairs.run, snakemake)
