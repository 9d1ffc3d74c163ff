"""Snakemake entry point: sample (see cotlens.stages.sample)."""

from cotlens.logs import logged
from cotlens.stages import sample

with logged(snakemake.log[0]):
    sample.run(
        snakemake.input.prompts,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
