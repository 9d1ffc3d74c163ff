"""Snakemake entry point: mult_prompts (see cotlens.stages.mult_prompts)."""

from cotlens.logs import logged
from cotlens.stages import mult_prompts

with logged(snakemake.log[0]):
    mult_prompts.run(dict(snakemake.params.cfg), snakemake.output[0])
