"""Snakemake entry point: prompts (see cotlens.stages.prompts)."""

from cotlens.logs import logged
from cotlens.stages import prompts

with logged(snakemake.log[0]):
    prompts.run(dict(snakemake.params.cfg), snakemake.output[0])
