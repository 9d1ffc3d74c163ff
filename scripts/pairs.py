"""Snakemake entry point: pairs (see cotlens.stages.pairs)."""

from cotlens.logs import logged
from cotlens.stages import pairs

with logged(snakemake.log[0]):
    pairs.run(
        snakemake.input.prompts,
        snakemake.input.samples,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
