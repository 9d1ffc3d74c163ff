rule lens:
    input:
        code=code_deps("lens.py"),
        activations=f"{RES}/{{model}}/activations",
        model="resources/models/{model}",
    output:
        f"{RES}/{{model}}/lens.parquet",
    params:
        cfg=config["lens"],
        runtime=config["runtime"],
    log:
        "results/logs/lens/{model}.log",
    benchmark:
        "results/benchmarks/lens/{model}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    script:
        "../../scripts/lens.py"
