"""Snakemake entry point of rule neurons_effects: cotlens.stages.neurons.effects.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.neurons import effects

from_snakemake(effects.run, snakemake)
