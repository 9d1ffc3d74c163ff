"""Snakemake entry point: one Study 2 figure (see cotlens.stages.neuron_figures)."""

from cotlens.logs import logged
from cotlens.stages import neuron_figures

with logged(snakemake.log[0]):
    neuron_figures.run(
        snakemake.wildcards.fig,
        snakemake.input.runs,
        snakemake.input.neurons,
        [snakemake.output.png, snakemake.output.pdf],
        snakemake.wildcards.model,
        snakemake.params.cfg["dpi"],
    )
