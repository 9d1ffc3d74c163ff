# One figure rule per study, `<study>_figure`: the {figure} wildcard takes the names of
# cotlens.studies.STUDIES[<study>].figures, each with its inputs listed there; the plot
# function (cotlens.<study>.figures.FIGURES) draws the PNG and PDF and the stage writes
# the numbers of the title to the JSON beside them.
for _study in STUDIES.values():

    rule:
        name:
            f"{_study.name}_figure"
        input:
            unpack(figure_inputs(_study.name)),
            code=code_deps(f"{_study.name}/figure.py"),
            # not loaded: the tables' fingerprints are checked against it (cotlens.io.provenance)
            provenance=MODEL,
        output:
            **figure_outputs(_study.name),
        log:
            log_path(f"{_study.name}_figure", "{model}-{figure}"),
        wildcard_constraints:
            figure=alternation(_study.figures),
        conda:
            "../../envs/cpu.yaml"
        params:
            cfg=figure_params,
            study=_study.name,
        script:
            # formatted by Snakemake when the job runs (an f-string here would be evaluated
            # then too, with the loop's last study)
            "../../scripts/{params.study}/figure.py"
