"""Study 4's stages, one module per Snakemake rule."""
