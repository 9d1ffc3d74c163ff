"""Snakemake entry point: expert_routes (see cotlens.stages.expert_routes.run_routes)."""

from cotlens.logs import logged
from cotlens.stages import expert_routes

with logged(snakemake.log[0]):
    expert_routes.run_routes(
        snakemake.input.prompts,
        snakemake.input.model,
        snakemake.output.routes,
        snakemake.output.responses,
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
        judge_dir=snakemake.input.judge[0] if snakemake.input.judge else None,
        judge_cache=snakemake.params.judge_cache,
    )
