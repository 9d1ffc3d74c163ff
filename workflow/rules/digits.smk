# Study 3 (Gambardella et al., ACL 2024; cotlens.studies): prompts -> confidence.
rule digits_prompts:
    input:
        code=code_deps("digits/prompts.py"),
    output:
        prompts=table("digits", "prompts"),
    log:
        log_path("digits_prompts", per="digits"),
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=cfg_of("digits_prompts"),
    script:
        "../../scripts/digits/prompts.py"


rule digits_confidence:
    input:
        unpack(model_stage("digits/confidence.py")),
        prompts=table("digits", "prompts"),
    output:
        confidence=table("digits", "confidence"),
    log:
        log_path("digits_confidence"),
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("digits_confidence"),
    script:
        "../../scripts/digits/confidence.py"
