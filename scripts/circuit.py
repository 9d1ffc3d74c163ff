"""Snakemake entry point: circuit sufficiency (see cotlens.stages.circuit)."""

from cotlens.logs import logged
from cotlens.stages import circuit

with logged(snakemake.log[0]):
    circuit.run(
        snakemake.input.pairs,
        snakemake.input.patching,
        snakemake.input.prompts,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
