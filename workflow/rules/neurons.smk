ARITH_PROMPT_KEYS = [
    "seed",
    "n_problems",
    "min_steps",
    "max_steps",
    "ops",
    "n_shots",
    "gsm8k_path",
]


rule arith_prompts:
    input:
        code=code_deps("arith_prompts.py"),
    output:
        "results/arith/prompts.parquet",
    log:
        "results/logs/arith_prompts/arith.log",
    benchmark:
        "results/benchmarks/arith_prompts/arith.tsv"
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg={k: config["arith"][k] for k in ARITH_PROMPT_KEYS if k in config["arith"]},
    script:
        "../../scripts/arith_prompts.py"


rule neurons:
    input:
        code=code_deps("neurons.py"),
        prompts="results/arith/prompts.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
        judge=judge_model,
    output:
        "results/arith/{model}/neurons.parquet",
    log:
        "results/logs/neurons/{model}.log",
    benchmark:
        "results/benchmarks/neurons/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["arith"]["neurons"],
        runtime=config["runtime"],
        judge_cache=lambda wc: f"resources/judge/{config['arith']['neurons'].get('judge') or 'none'}.jsonl",
    script:
        "../../scripts/neurons.py"


rule neuron_effects:
    input:
        code=code_deps("neuron_effects.py"),
        prompts="results/arith/prompts.parquet",
        neurons="results/arith/{model}/neurons.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        "results/arith/{model}/runs.parquet",
    log:
        "results/logs/neuron_effects/{model}.log",
    benchmark:
        "results/benchmarks/neuron_effects/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg={**config["arith"]["neurons"], **config["arith"]["effects"]},
        runtime=config["runtime"],
    script:
        "../../scripts/neuron_effects.py"


rule figure_neurons:
    input:
        code=code_deps("neuron_figures.py"),
        runs="results/arith/{model}/runs.parquet",
        neurons="results/arith/{model}/neurons.parquet",
    output:
        png=report(
            "results/arith/{model}/figures/{fig}.png",
            caption="../report/neurons.rst",
            category="FFN neurons on arithmetic CoT",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{fig}"},
        ),
        pdf="results/arith/{model}/figures/{fig}.pdf",
    log:
        "results/logs/figures/{model}-{fig}.log",
    benchmark:
        "results/benchmarks/figures/{model}-{fig}.tsv"
    wildcard_constraints:
        fig="neuron_concepts|neuron_ablation|neuron_activation",
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=config["figures"],
    script:
        "../../scripts/neuron_figures.py"
