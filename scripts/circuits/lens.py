"""Snakemake entry point of rule circuits_lens: cotlens.circuits.stages.lens.run."""

from cotlens.circuits.stages import lens
from cotlens.pipeline.stage import from_snakemake

from_snakemake(lens.run, snakemake)
