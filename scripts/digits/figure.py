"""Snakemake entry point of rule digits_figure: cotlens.digits.stages.figure.run."""

from cotlens.digits.stages import figure
from cotlens.pipeline.stage import from_snakemake

from_snakemake(figure.run, snakemake)
