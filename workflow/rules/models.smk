rule prepare_model:
    input:
        code=code_deps("prepare_model.py"),
    output:
        directory("resources/models/{model}"),
    params:
        models=model_entry,
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
    script:
        "../../scripts/prepare_model.py"
