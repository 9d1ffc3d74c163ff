"""Snakemake entry point of rule experts_ftri: cotlens.experts.stages.ftri.run."""

from cotlens.experts.stages import ftri
from cotlens.pipeline.stage import from_snakemake

from_snakemake(ftri.run, snakemake)
