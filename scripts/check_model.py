"""Snakemake entry point: check_model (see cotlens.checks)."""

from cotlens.checks import check_prepared
from cotlens.logs import logged

with logged(snakemake.log[0]):
    check_prepared(snakemake.input.model, snakemake.output[0], snakemake.params.device)
