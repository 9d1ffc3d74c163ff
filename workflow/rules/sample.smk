rule sample:
    input:
        code=code_deps("sample.py"),
        prompts=f"{RES}/prompts.parquet",
        model="resources/models/{model}",
    output:
        f"{RES}/{{model}}/samples.parquet",
    params:
        cfg=config["sample"],
        runtime=config["runtime"],
    log:
        "results/logs/sample/{model}.log",
    benchmark:
        "results/benchmarks/sample/{model}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
    script:
        "../../scripts/sample.py"
