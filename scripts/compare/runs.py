"""Snakemake entry point of rule compare_runs: cotlens.stages.compare.runs.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.compare import runs

from_snakemake(runs.run, snakemake)
