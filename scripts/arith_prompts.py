"""Snakemake entry point: arith_prompts (see cotlens.stages.arith_prompts.run)."""

from cotlens.logs import logged
from cotlens.stages import arith_prompts

with logged(snakemake.log[0]):
    arith_prompts.run(dict(snakemake.params.cfg), snakemake.output[0])
