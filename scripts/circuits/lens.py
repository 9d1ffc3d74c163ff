"""Snakemake entry point of rule circuits_lens: cotlens.stages.circuits.lens.run."""

from cotlens.stages.circuits import lens
from cotlens.stages.common import from_snakemake

from_snakemake(lens.run, snakemake)
