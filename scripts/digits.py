"""Snakemake entry point: digits (see cotlens.stages.digits.run)."""

from cotlens.logs import logged
from cotlens.stages import digits

with logged(snakemake.log[0]):
    digits.run(
        snakemake.input.prompts,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
