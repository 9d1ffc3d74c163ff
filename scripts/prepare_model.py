"""Snakemake entry point: prepare_model (see cotlens.models.prepare and cotlens.checks)."""

from cotlens.checks import verify_at
from cotlens.logs import logged
from cotlens.models.prepare import prepare
from cotlens.models.registry import resolve

name = snakemake.wildcards.model
with logged(snakemake.log[0]):
    prepare(
        resolve(name, snakemake.params.models),
        snakemake.output[0],
        verify=lambda where, kw: verify_at(where, kw, name, snakemake.params.device),
    )
