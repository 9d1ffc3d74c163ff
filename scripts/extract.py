"""Snakemake entry point: extract (see cotlens.stages.extract)."""

from cotlens.logs import logged
from cotlens.stages import extract

with logged(snakemake.log[0]):
    extract.run(
        snakemake.input.samples,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
