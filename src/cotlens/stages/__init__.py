"""Stage entry points: one module per Snakemake stage, each a ``run(...)`` that the
matching ``scripts/*.py`` calls with paths and config dicts. They orchestrate the
method modules and own all file I/O."""
