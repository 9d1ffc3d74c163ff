"""Snakemake entry point of rule experts_ftri: cotlens.stages.experts.ftri.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.experts import ftri

from_snakemake(ftri.run, snakemake)
