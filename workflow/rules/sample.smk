rule sample:
    input:
        code=code_deps("sample.py"),
        prompts=f"{RES}/prompts.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        f"{RES}/{{model}}/samples.parquet",
    log:
        "results/logs/sample/{model}.log",
    benchmark:
        "results/benchmarks/sample/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["sample"],
        runtime=config["runtime"],
    script:
        "../../scripts/sample.py"
