"""Study 1's stages, one module per Snakemake rule."""
