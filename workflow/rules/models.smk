rule prepare_model:
    input:
        code=code_deps("prepare_model.py"),
    output:
        directory("resources/models/{model}"),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    wildcard_constraints:
        model=alternation(PREPARED),
    conda:
        "../../envs/cpu.yaml"
    threads: 2
    resources:
        mem_mb=16000,
    params:
        models=model_entry,
        device=config["runtime"]["device"],
    script:
        "../../scripts/prepare_model.py"


rule train_moe:
    input:
        code=code_deps("train_moe.py"),
    output:
        directory("resources/models/{model}"),
    log:
        "results/logs/train_moe/{model}.log",
    benchmark:
        "results/benchmarks/train_moe/{model}.tsv"
    wildcard_constraints:
        model=alternation(TRAINED),
    conda:
        "../../envs/cpu.yaml"
    threads: 2
    resources:
        mem_mb=4000,
    params:
        models=model_entry,
        device=config["runtime"]["device"],
    script:
        "../../scripts/train_moe.py"
