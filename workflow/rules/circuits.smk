# Study 1 (Dutta et al., TMLR 2024): pairs -> patch -> heads / circuit / probe -> figures.


rule pairs:
    input:
        code=code_deps("pairs.py"),
        prompts=f"{RES}/prompts.parquet",
        samples=f"{RES}/{{model}}/samples.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        f"{RES}/{{model}}/pairs.parquet",
    log:
        "results/logs/pairs/{model}.log",
    benchmark:
        "results/benchmarks/pairs/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["circuits"]["pairs"],
        runtime=config["runtime"],
    script:
        "../../scripts/pairs.py"


rule patch:
    input:
        code=code_deps("patch.py"),
        pairs=f"{RES}/{{model}}/pairs.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        patching=f"{RES}/{{model}}/patching.parquet",
        pathways=f"{RES}/{{model}}/pathways.parquet",
    log:
        "results/logs/patch/{model}.log",
    benchmark:
        "results/benchmarks/patch/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["circuits"]["patch"],
        runtime=config["runtime"],
    script:
        "../../scripts/patch.py"


rule heads:
    input:
        code=code_deps("heads.py"),
        pairs=f"{RES}/{{model}}/pairs.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        f"{RES}/{{model}}/heads.parquet",
    log:
        "results/logs/heads/{model}.log",
    benchmark:
        "results/benchmarks/heads/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        runtime=config["runtime"],
    script:
        "../../scripts/heads.py"


rule circuit:
    input:
        code=code_deps("circuit.py"),
        pairs=f"{RES}/{{model}}/pairs.parquet",
        patching=f"{RES}/{{model}}/patching.parquet",
        prompts=f"{RES}/prompts.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        f"{RES}/{{model}}/circuit.parquet",
    log:
        "results/logs/circuit/{model}.log",
    benchmark:
        "results/benchmarks/circuit/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["circuits"]["circuit"],
        runtime=config["runtime"],
    script:
        "../../scripts/circuit.py"


rule probe:
    input:
        code=code_deps("probe.py"),
        prompts=f"{RES}/prompts.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        f"{RES}/{{model}}/probe.parquet",
    log:
        "results/logs/probe/{model}.log",
    benchmark:
        "results/benchmarks/probe/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["circuits"]["probe"],
        runtime=config["runtime"],
    script:
        "../../scripts/probe.py"


rule figure_circuits:
    input:
        unpack(circuit_figure_inputs),
        code=code_deps("circuit_figures.py"),
    output:
        png=report(
            f"{RES}/{{model}}/figures/{{fig}}.png",
            caption="../report/circuits.rst",
            category="Study 1: reasoning circuits",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{fig}"},
        ),
        pdf=f"{RES}/{{model}}/figures/{{fig}}.pdf",
        numbers=f"{RES}/{{model}}/figures/{{fig}}.json",
    log:
        "results/logs/figures/{model}-{fig}.log",
    benchmark:
        "results/benchmarks/figures/{model}-{fig}.tsv"
    wildcard_constraints:
        fig="|".join(CIRCUIT_FIGURES),
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=config["figures"],
    script:
        "../../scripts/circuit_figures.py"
