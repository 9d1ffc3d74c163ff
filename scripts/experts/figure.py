"""Snakemake entry point of rule experts_figure: cotlens.stages.experts.figure.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.experts import figure

from_snakemake(figure.run, snakemake)
