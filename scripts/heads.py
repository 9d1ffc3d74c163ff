"""Snakemake entry point: heads (see cotlens.stages.heads)."""

from cotlens.logs import logged
from cotlens.stages import heads

with logged(snakemake.log[0]):
    heads.run(
        snakemake.input.pairs,
        snakemake.input.model,
        snakemake.output[0],
        {},
        dict(snakemake.params.runtime),
        snakemake.threads,
        checks=snakemake.input.checks,
    )
