"""Snakemake entry point: expert_effects (see cotlens.stages.expert_effects.run_effects)."""

from cotlens.logs import logged
from cotlens.stages import expert_effects

with logged(snakemake.log[0]):
    expert_effects.run_effects(
        snakemake.input.prompts,
        snakemake.input.ftri,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
        judge_dir=snakemake.input.judge[0] if snakemake.input.judge else None,
        judge_cache=snakemake.params.judge_cache,
    )
