rule lens:
    input:
        code=code_deps("lens.py"),
        activations=f"{RES}/{{model}}/activations",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        f"{RES}/{{model}}/lens.parquet",
    log:
        "results/logs/lens/{model}.log",
    benchmark:
        "results/benchmarks/lens/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["lens"],
        runtime=config["runtime"],
    script:
        "../../scripts/lens.py"
