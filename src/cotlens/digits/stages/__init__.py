"""Study 3's stages, one module per Snakemake rule."""
