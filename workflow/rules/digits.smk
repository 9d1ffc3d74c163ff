DIGIT_PROMPT_KEYS = [
    "seed",
    "n_digits",
    "m_digits",
    "n_per_cell",
    "n_shots",
    "template",
    "direct_template",
]


rule mult_prompts:
    input:
        code=code_deps("mult_prompts.py"),
    output:
        "results/digits/prompts.parquet",
    log:
        "results/logs/mult_prompts/digits.log",
    benchmark:
        "results/benchmarks/mult_prompts/digits.tsv"
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg={k: config["digits"][k] for k in DIGIT_PROMPT_KEYS if k in config["digits"]},
    script:
        "../../scripts/mult_prompts.py"


rule digits:
    input:
        code=code_deps("digits.py"),
        prompts="results/digits/prompts.parquet",
        model="resources/models/{model}",
        checks="resources/checks/{model}.json",
    output:
        "results/digits/{model}/digits.parquet",
    log:
        "results/logs/digits/{model}.log",
    benchmark:
        "results/benchmarks/digits/{model}.tsv"
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["digits"],
        runtime=config["runtime"],
    script:
        "../../scripts/digits.py"


rule figure_digits:
    input:
        code=code_deps("digit_figures.py"),
        digits="results/digits/{model}/digits.parquet",
    output:
        png=report(
            "results/digits/{model}/figures/{fig}.png",
            caption="../report/digits.rst",
            category="Digit confidence",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "{fig}"},
        ),
        pdf="results/digits/{model}/figures/{fig}.pdf",
        json="results/digits/{model}/figures/{fig}.json",
    log:
        "results/logs/figures/{model}-{fig}.log",
    benchmark:
        "results/benchmarks/figures/{model}-{fig}.tsv"
    wildcard_constraints:
        fig="digit_confidence|digit_conditioning|digit_accuracy",
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=config["figures"],
    script:
        "../../scripts/digit_figures.py"
