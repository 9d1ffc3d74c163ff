"""Snakemake entry point: neurons (see cotlens.stages.neurons.run_discovery)."""

from cotlens.logs import logged
from cotlens.stages import neurons

with logged(snakemake.log[0]):
    neurons.run_discovery(
        snakemake.input.prompts,
        snakemake.input.model,
        snakemake.output[0],
        dict(snakemake.params.cfg),
        dict(snakemake.params.runtime),
        snakemake.threads,
        judge_dir=snakemake.input.judge[0] if snakemake.input.judge else None,
        judge_cache=snakemake.params.judge_cache,
        checks=snakemake.input.checks,
    )
