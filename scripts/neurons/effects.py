"""Snakemake entry point of rule neurons_effects: cotlens.neurons.stages.effects.run."""

from cotlens.neurons.stages import effects
from cotlens.pipeline.stage import from_snakemake

from_snakemake(effects.run, snakemake)
