"""Snakemake entry point of rule experts_effects: cotlens.experts.stages.effects.run."""

from cotlens.experts.stages import effects
from cotlens.pipeline.stage import from_snakemake

from_snakemake(effects.run, snakemake)
