"""Snakemake entry point of rule experts_figure: cotlens.experts.stages.figure.run."""

from cotlens.experts.stages import figure
from cotlens.pipeline.stage import from_snakemake

from_snakemake(figure.run, snakemake)
