"""Snakemake entry point of rule neurons_figure: cotlens.neurons.stages.figure.run."""

from cotlens.neurons.stages import figure
from cotlens.pipeline.stage import from_snakemake

from_snakemake(figure.run, snakemake)
