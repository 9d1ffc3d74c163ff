"""Snakemake entry point: patch (see cotlens.stages.patch)."""

from cotlens.logs import logged
from cotlens.stages import patch

with logged(snakemake.log[0]):
    patch.run(
        snakemake.input.pairs,
        snakemake.input.model,
        snakemake.output.patching,
        snakemake.output.pathways,
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
    )
