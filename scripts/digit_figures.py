"""Snakemake entry point: one digit-confidence figure (see cotlens.stages.digit_figures)."""

from cotlens.logs import logged
from cotlens.stages import digit_figures

with logged(snakemake.log[0]):
    digit_figures.run(
        snakemake.wildcards.fig,
        snakemake.input.digits,
        [snakemake.output.png, snakemake.output.pdf],
        snakemake.wildcards.model,
        snakemake.params.cfg["dpi"],
    )
