"""Snakemake entry point of rule circuits_patch: cotlens.stages.circuits.patch.run."""

from cotlens.stages.circuits import patch
from cotlens.stages.common import from_snakemake

from_snakemake(patch.run, snakemake)
