"""Snakemake entry point of rule experts_effects: cotlens.stages.experts.effects.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.experts import effects

from_snakemake(effects.run, snakemake)
