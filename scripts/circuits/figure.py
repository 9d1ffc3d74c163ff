"""Snakemake entry point of rule circuits_figure: cotlens.circuits.stages.figure.run."""

from cotlens.circuits.stages import figure
from cotlens.pipeline.stage import from_snakemake

from_snakemake(figure.run, snakemake)
