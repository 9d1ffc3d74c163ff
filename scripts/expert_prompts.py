"""Snakemake entry point: expert_prompts (see cotlens.stages.expert_prompts.run_prompts)."""

from cotlens.logs import logged
from cotlens.stages import expert_prompts

with logged(snakemake.log[0]):
    expert_prompts.run_prompts(snakemake.output[0], dict(snakemake.params.cfg))
