"""Snakemake entry point: neuron_effects (see cotlens.stages.neurons.run_effects)."""

from cotlens.logs import logged
from cotlens.stages import neurons

with logged(snakemake.log[0]):
    neurons.run_effects(
        snakemake.input.prompts,
        snakemake.input.neurons,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
