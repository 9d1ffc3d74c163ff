"""Snakemake entry point: lens (see cotlens.stages.lens)."""

from cotlens.logs import logged
from cotlens.stages import lens

with logged(snakemake.log[0]):
    lens.run(
        snakemake.input.activations,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
