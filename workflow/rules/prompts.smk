rule prompts:
    input:
        code=code_deps("prompts.py"),
    output:
        f"{RES}/prompts.parquet",
    params:
        cfg=config["prompts"],
    log:
        f"results/logs/prompts/{STUDY}.log",
    benchmark:
        f"results/benchmarks/prompts/{STUDY}.tsv"
    threads: 1
    script:
        "../../scripts/prompts.py"
