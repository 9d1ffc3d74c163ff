"""Snakemake entry point: one figure (see cotlens.stages.figures)."""

from cotlens.logs import logged
from cotlens.stages import figures

with logged(snakemake.log[0]):
    figures.run(
        snakemake.params.name,
        {k: v for k, v in snakemake.input.items() if k != "code"},
        [snakemake.output.png, snakemake.output.pdf],
        snakemake.wildcards.model,
        snakemake.params.cfg["dpi"],
    )
