"""Snakemake entry point of rule circuits_heads: cotlens.circuits.stages.heads.run."""

from cotlens.circuits.stages import heads
from cotlens.pipeline.stage import from_snakemake

from_snakemake(heads.run, snakemake)
