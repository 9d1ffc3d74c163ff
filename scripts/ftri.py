"""Snakemake entry point: ftri (see cotlens.stages.ftri.run_ftri)."""

from cotlens.logs import logged
from cotlens.stages import ftri

with logged(snakemake.log[0]):
    ftri.run_ftri(
        snakemake.input.prompts,
        snakemake.input.responses,
        snakemake.input.routes,
        snakemake.output[0],
        dict(snakemake.params.cfg),
    )
