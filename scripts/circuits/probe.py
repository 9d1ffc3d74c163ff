"""Snakemake entry point of rule circuits_probe: cotlens.circuits.stages.probe.run."""

from cotlens.circuits.stages import probe
from cotlens.pipeline.stage import from_snakemake

from_snakemake(probe.run, snakemake)
