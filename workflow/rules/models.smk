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
    script:
        "../../scripts/train_moe.py"


# The self-checks (cotlens.checks) of a prepared or trained model. Every model stage takes
# the report as input: none starts before the checks pass (a failed check every study
# needs writes no report), and an edit of the checked code reruns the checks and what
# depends on them.
rule check_model:
    input:
        code=code_deps("check_model.py"),
        model="resources/models/{model}",
    output:
        "resources/checks/{model}.json",
    log:
        "results/logs/check_model/{model}.log",
    benchmark:
        "results/benchmarks/check_model/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=16000,
    params:
        device=config["runtime"]["device"],
    script:
        "../../scripts/check_model.py"
