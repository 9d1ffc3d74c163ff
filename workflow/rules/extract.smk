rule extract:
    input:
        code=code_deps("extract.py"),
        samples=f"{RES}/{{model}}/samples.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        directory(f"{RES}/{{model}}/activations"),
    log:
        "results/logs/extract/{model}.log",
    benchmark:
        "results/benchmarks/extract/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["extract"],
        runtime=config["runtime"],
    script:
        "../../scripts/extract.py"
