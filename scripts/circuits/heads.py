"""Snakemake entry point of rule circuits_heads: cotlens.stages.circuits.heads.run."""

from cotlens.stages.circuits import heads
from cotlens.stages.common import from_snakemake

from_snakemake(heads.run, snakemake)
