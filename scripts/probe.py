"""Snakemake entry point: relation probe (see cotlens.stages.probe)."""

from cotlens.logs import logged
from cotlens.stages import probe

with logged(snakemake.log[0]):
    probe.run(
        snakemake.input.prompts,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
