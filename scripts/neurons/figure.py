"""Snakemake entry point of rule neurons_figure: cotlens.stages.neurons.figure.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.neurons import figure

from_snakemake(figure.run, snakemake)
