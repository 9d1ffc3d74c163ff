"""Snakemake entry point of rule experts_routes: cotlens.stages.experts.routes.run."""

from cotlens.stages.common import from_snakemake
from cotlens.stages.experts import routes

from_snakemake(routes.run, snakemake)
