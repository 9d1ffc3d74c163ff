EXPERT_PROMPT_KEYS = ["contrasts", "n_quality", "seed"]
EXPERT_GEN_KEYS = ["max_new_tokens", "batch_size"]


rule expert_prompts:
    input:
        code=code_deps("expert_prompts.py"),
    output:
        "results/experts/prompts.parquet",
    log:
        "results/logs/expert_prompts/experts.log",
    benchmark:
        "results/benchmarks/expert_prompts/experts.tsv"
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg={k: config["experts"][k] for k in EXPERT_PROMPT_KEYS},
    script:
        "../../scripts/expert_prompts.py"


rule expert_routes:
    input:
        code=code_deps("expert_routes.py"),
        prompts="results/experts/prompts.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
        judge=expert_judge_model,
    output:
        routes="results/experts/{model}/routes.parquet",
        responses="results/experts/{model}/responses.parquet",
    log:
        "results/logs/expert_routes/{model}.log",
    benchmark:
        "results/benchmarks/expert_routes/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg={k: config["experts"][k] for k in EXPERT_GEN_KEYS},
        runtime=config["runtime"],
        judge_cache=expert_judge_cache,
    script:
        "../../scripts/expert_routes.py"


rule ftri:
    input:
        code=code_deps("ftri.py"),
        prompts="results/experts/prompts.parquet",
        responses="results/experts/{model}/responses.parquet",
        routes="results/experts/{model}/routes.parquet",
    output:
        "results/experts/{model}/ftri.parquet",
    log:
        "results/logs/ftri/{model}.log",
    benchmark:
        "results/benchmarks/ftri/{model}.tsv"
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=4000,
    params:
        cfg={k: config["experts"][k] for k in ["tokens", "classes"]},
    script:
        "../../scripts/ftri.py"


rule expert_effects:
    input:
        code=code_deps("expert_effects.py"),
        prompts="results/experts/prompts.parquet",
        ftri="results/experts/{model}/ftri.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
        judge=expert_judge_model,
    output:
        "results/experts/{model}/runs.parquet",
    log:
        "results/logs/expert_effects/{model}.log",
    benchmark:
        "results/benchmarks/expert_effects/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg={k: config["experts"][k] for k in [*EXPERT_GEN_KEYS, "k", "random_seeds"]},
        runtime=config["runtime"],
        judge_cache=expert_judge_cache,
    script:
        "../../scripts/expert_effects.py"


rule figure_experts:
    input:
        code=code_deps("expert_figures.py"),
        ftri="results/experts/{model}/ftri.parquet",
        runs="results/experts/{model}/runs.parquet",
        prompts="results/experts/prompts.parquet",
    output:
        png=report(
            "results/experts/{model}/figures/{fig}.png",
            caption="../report/experts.rst",
            category="Expert maps and switching (MoE)",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{fig}"},
        ),
        pdf="results/experts/{model}/figures/{fig}.pdf",
        json="results/experts/{model}/figures/{fig}.json",
    log:
        "results/logs/figures/{model}-{fig}.log",
    benchmark:
        "results/benchmarks/figures/{model}-{fig}.tsv"
    wildcard_constraints:
        fig="expert_map|expert_switch|expert_quality",
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=config["figures"],
    script:
        "../../scripts/expert_figures.py"
