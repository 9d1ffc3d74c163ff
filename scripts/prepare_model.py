"""Snakemake entry point: prepare_model (see cotlens.models.prepare)."""

from cotlens.logs import logged
from cotlens.models.prepare import prepare
from cotlens.models.registry import resolve

with logged(snakemake.log[0]):
    prepare(resolve(snakemake.wildcards.model, snakemake.params.models), snakemake.output[0])
