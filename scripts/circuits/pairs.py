"""Snakemake entry point of rule circuits_pairs: cotlens.stages.circuits.pairs.run."""

from cotlens.stages.circuits import pairs
from cotlens.stages.common import from_snakemake

from_snakemake(pairs.run, snakemake)
