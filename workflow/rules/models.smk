rule prepare_model:
    input:
        code=code_deps("prepare_model.py"),
    output:
        directory("resources/models/{model}"),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=16000,
    params:
        models=model_entry,
    script:
        "../../scripts/prepare_model.py"
