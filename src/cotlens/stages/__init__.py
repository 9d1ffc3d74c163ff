"""Stage entry points, one module per Snakemake rule, grouped by study
(``stages/<study>/<stage>.py`` runs rule ``<study>_<stage>``; ``stages/models/`` the
model rules). Every stage has the one contract of :mod:`cotlens.stages.common`:
``run(inputs, outputs, params, runtime, threads)``. Stages orchestrate the method modules
and own all file I/O; no stage imports another stage."""
