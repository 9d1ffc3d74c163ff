"""Snakemake entry point of rule circuits_figure: cotlens.stages.circuits.figure.run."""

from cotlens.stages.circuits import figure
from cotlens.stages.common import from_snakemake

from_snakemake(figure.run, snakemake)
