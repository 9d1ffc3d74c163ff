"""Snakemake entry point of rule digits_figure: cotlens.stages.digits.figure.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.digits import figure

from_snakemake(figure.run, snakemake)
