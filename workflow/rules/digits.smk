# Study 3 (Gambardella et al., ACL 2024; cotlens.studies): prompts -> confidence.
DIGITS_PROMPT_KEYS = [
    "seed",
    "n_digits",
    "m_digits",
    "n_per_cell",
    "n_shots",
    "template",
    "direct_template",
]


rule digits_prompts:
    input:
        code=code_deps("digits/prompts.py"),
    output:
        prompts=table("digits", "prompts"),
    log:
        log_path("digits_prompts", per="digits"),
    benchmark:
        bench_path("digits_prompts", per="digits")
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg={
            k: config["digits"][k] for k in DIGITS_PROMPT_KEYS if k in config["digits"]
        },
    script:
        "../../scripts/digits/prompts.py"


rule digits_confidence:
    input:
        code=code_deps("digits/confidence.py"),
        prompts=table("digits", "prompts"),
        model=MODEL,
        checks=CHECKS,
    output:
        confidence=table("digits", "confidence"),
    log:
        log_path("digits_confidence"),
    benchmark:
        bench_path("digits_confidence")
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=config["digits"],
        runtime=config["runtime"],
    script:
        "../../scripts/digits/confidence.py"
