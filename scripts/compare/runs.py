"""Snakemake entry point of rule compare_runs: cotlens.pipeline.stages.runs.run."""

from cotlens.pipeline.stage import from_snakemake
from cotlens.pipeline.stages import runs

from_snakemake(runs.run, snakemake)
