rule prompts:
    input:
        code=code_deps("prompts.py"),
    output:
        f"{RES}/prompts.parquet",
    log:
        f"results/logs/prompts/{STUDY}.log",
    benchmark:
        f"results/benchmarks/prompts/{STUDY}.tsv"
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    params:
        cfg=config["prompts"],
    script:
        "../../scripts/prompts.py"
