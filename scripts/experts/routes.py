"""Snakemake entry point of rule experts_routes: cotlens.experts.stages.routes.run."""

from cotlens.experts.stages import routes
from cotlens.pipeline.stage import from_snakemake

from_snakemake(routes.run, snakemake)
