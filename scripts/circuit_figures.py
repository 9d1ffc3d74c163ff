"""Snakemake entry point: one Study 1 figure (see cotlens.stages.circuit_figures)."""

from cotlens.logs import logged
from cotlens.stages import circuit_figures

with logged(snakemake.log[0]):
    circuit_figures.run(
        snakemake.wildcards.fig,
        {k: v for k, v in snakemake.input.items() if k != "code"},
        [snakemake.output.png, snakemake.output.pdf],
        snakemake.output.numbers,
        snakemake.wildcards.model,
        snakemake.params.cfg["dpi"],
    )
