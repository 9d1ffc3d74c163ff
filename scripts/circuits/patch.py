"""Snakemake entry point of rule circuits_patch: cotlens.circuits.stages.patch.run."""

from cotlens.circuits.stages import patch
from cotlens.pipeline.stage import from_snakemake

from_snakemake(patch.run, snakemake)
