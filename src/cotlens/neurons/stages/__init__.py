"""Study 2's stages, one module per Snakemake rule."""
