"""Snakemake entry point: one Study 4 figure (see cotlens.stages.expert_figures)."""

from cotlens.logs import logged
from cotlens.stages import expert_figures

with logged(snakemake.log[0]):
    expert_figures.run(
        snakemake.wildcards.fig,
        snakemake.input.ftri,
        snakemake.input.runs,
        snakemake.input.prompts,
        [snakemake.output.png, snakemake.output.pdf],
        snakemake.wildcards.model,
        snakemake.params.cfg["dpi"],
    )
