"""Snakemake entry point of rule circuits_probe: cotlens.stages.circuits.probe.run."""

from cotlens.stages.circuits import probe
from cotlens.stages.common import from_snakemake

from_snakemake(probe.run, snakemake)
