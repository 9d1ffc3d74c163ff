"""Snakemake entry point of rule circuits_sufficiency: cotlens.circuits.stages.sufficiency.run."""

from cotlens.circuits.stages import sufficiency
from cotlens.pipeline.stage import from_snakemake

from_snakemake(sufficiency.run, snakemake)
