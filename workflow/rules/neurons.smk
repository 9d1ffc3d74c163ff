# Study 2 (Rai & Yao, ACL 2024; cotlens.studies): prompts -> discovery -> effects.


rule neurons_prompts:
    input:
        code=code_deps("neurons/prompts.py"),
        # a GSM8K file is an input: an edit of it reruns the study
        gsm8k=config["neurons"]["prompts"]["gsm8k_path"] or [],
    output:
        prompts=table("neurons", "prompts"),
    log:
        log_path("neurons_prompts", per="neurons"),
    priority: 30
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=cfg_of("neurons_prompts"),
    script:
        "../../scripts/neurons/prompts.py"


rule neurons_discovery:
    input:
        unpack(model_stage("neurons/discovery.py")),
        prompts=table("neurons", "prompts"),
        judge=judge_model(NEURONS_JUDGE),
    output:
        neurons=table("neurons", "neurons"),
    log:
        log_path("neurons_discovery"),
    priority: 30
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("neurons_discovery", judge=NEURONS_JUDGE),
    script:
        "../../scripts/neurons/discovery.py"


rule neurons_effects:
    input:
        unpack(model_stage("neurons/effects.py")),
        prompts=table("neurons", "prompts"),
        neurons=table("neurons", "neurons"),
    output:
        effects=table("neurons", "effects"),
    log:
        log_path("neurons_effects"),
    priority: 30
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("neurons_effects"),
    script:
        "../../scripts/neurons/effects.py"
