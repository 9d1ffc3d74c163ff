"""Snakemake entry point: train_moe (see cotlens.models.moe_train)."""

from cotlens.logs import logged
from cotlens.models.moe_train import train_moe

with logged(snakemake.log[0]):
    train_moe(snakemake.params.models[snakemake.wildcards.model], snakemake.output[0], snakemake.threads)
