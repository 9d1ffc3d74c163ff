# Across runs (config `compare.runs`): the figure JSONs of several runs (results/<run>/,
# each made by its own configuration) in one table and one figure, under this run.


rule compare_runs:
    input:
        unpack(compare_inputs),
        code=code_deps("compare/runs.py"),
    output:
        **compare_outputs(),
    log:
        f"{RESULTS}/logs/compare_runs.log",
    localrule: True
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg={"runs": config["compare"]["runs"], "dpi": config["figures"]["dpi"]},
    script:
        "../../scripts/compare/runs.py"
