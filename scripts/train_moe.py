"""Snakemake entry point: train_moe (see cotlens.models.moe_train and cotlens.checks)."""

from cotlens.checks import verify_at
from cotlens.logs import logged
from cotlens.models.moe_train import train_moe

name = snakemake.wildcards.model
with logged(snakemake.log[0]):
    train_moe(
        snakemake.params.models[name],
        snakemake.output[0],
        snakemake.threads,
        verify=lambda where, kw: verify_at(where, kw, name, snakemake.params.device),
    )
