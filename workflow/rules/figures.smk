rule figure_accuracy:
    input:
        code=code_deps("figures.py"),
        prompts=f"{RES}/prompts.parquet",
        samples=f"{RES}/{{model}}/samples.parquet",
    output:
        png=report(
            f"{RES}/{{model}}/figures/accuracy.png",
            caption="../report/accuracy.rst",
            category="PrOntoQA",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "answer accuracy"},
        ),
        pdf=f"{RES}/{{model}}/figures/accuracy.pdf",
    log:
        "results/logs/figures/{model}-accuracy.log",
    benchmark:
        "results/benchmarks/figures/{model}-accuracy.tsv"
    conda:
        "../../envs/cpu.yaml"
    params:
        name="accuracy",
        cfg=config["figures"],
    script:
        "../../scripts/figures.py"


rule figure_step_accuracy:
    input:
        code=code_deps("figures.py"),
        prompts=f"{RES}/prompts.parquet",
        samples=f"{RES}/{{model}}/samples.parquet",
    output:
        png=report(
            f"{RES}/{{model}}/figures/step_accuracy.png",
            caption="../report/step_accuracy.rst",
            category="PrOntoQA",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "step accuracy"},
        ),
        pdf=f"{RES}/{{model}}/figures/step_accuracy.pdf",
    log:
        "results/logs/figures/{model}-step_accuracy.log",
    benchmark:
        "results/benchmarks/figures/{model}-step_accuracy.tsv"
    conda:
        "../../envs/cpu.yaml"
    params:
        name="step_accuracy",
        cfg=config["figures"],
    script:
        "../../scripts/figures.py"


rule figure_lens_heatmap:
    input:
        code=code_deps("figures.py"),
        lens=f"{RES}/{{model}}/lens.parquet",
    output:
        png=report(
            f"{RES}/{{model}}/figures/lens_heatmap.png",
            caption="../report/lens_heatmap.rst",
            category="PrOntoQA",
            subcategory="{model}",
            labels={"model": "{model}", "figure": "logit lens"},
        ),
        pdf=f"{RES}/{{model}}/figures/lens_heatmap.pdf",
    log:
        "results/logs/figures/{model}-lens_heatmap.log",
    benchmark:
        "results/benchmarks/figures/{model}-lens_heatmap.tsv"
    conda:
        "../../envs/cpu.yaml"
    params:
        name="lens_heatmap",
        cfg=config["figures"],
    script:
        "../../scripts/figures.py"
