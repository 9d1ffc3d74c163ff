"""Snakemake entry point of rule circuits_sufficiency: cotlens.stages.circuits.sufficiency.run."""

from cotlens.stages.circuits import sufficiency
from cotlens.stages.common import from_snakemake

from_snakemake(sufficiency.run, snakemake)
