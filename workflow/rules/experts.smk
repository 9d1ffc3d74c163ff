# Study 4 (MoTE, 2025; cotlens.studies): prompts -> routes -> ftri -> effects, on the MoE
# models of experts.models.


rule experts_prompts:
    input:
        code=code_deps("experts/prompts.py"),
    output:
        prompts=table("experts", "prompts"),
    log:
        log_path("experts_prompts", per="experts"),
    priority: 20
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=cfg_of("experts_prompts"),
    script:
        "../../scripts/experts/prompts.py"


rule experts_routes:
    input:
        unpack(model_stage("experts/routes.py")),
        prompts=table("experts", "prompts"),
        judge=judge_model(EXPERTS_JUDGE),
    output:
        routes=table("experts", "routes"),
        responses=table("experts", "responses"),
    log:
        log_path("experts_routes"),
    priority: 20
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("experts_routes", judge=EXPERTS_JUDGE),
    script:
        "../../scripts/experts/routes.py"


rule experts_ftri:
    input:
        code=code_deps("experts/ftri.py"),
        prompts=table("experts", "prompts"),
        responses=table("experts", "responses"),
        routes=table("experts", "routes"),
    output:
        ftri=table("experts", "ftri"),
    log:
        log_path("experts_ftri"),
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=cfg_of("experts_ftri"),
    script:
        "../../scripts/experts/ftri.py"


rule experts_effects:
    input:
        unpack(model_stage("experts/effects.py")),
        prompts=table("experts", "prompts"),
        ftri=table("experts", "ftri"),
        judge=judge_model(EXPERTS_JUDGE),
    output:
        effects=table("experts", "effects"),
    log:
        log_path("experts_effects"),
    priority: 20
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("experts_effects", judge=EXPERTS_JUDGE),
    script:
        "../../scripts/experts/effects.py"
