"""Snakemake entry point of rule neurons_discovery: cotlens.stages.neurons.discovery.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.neurons import discovery

from_snakemake(discovery.run, snakemake)
