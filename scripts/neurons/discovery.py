"""Snakemake entry point of rule neurons_discovery: cotlens.neurons.stages.discovery.run."""

from cotlens.neurons.stages import discovery
from cotlens.pipeline.stage import from_snakemake

from_snakemake(discovery.run, snakemake)
