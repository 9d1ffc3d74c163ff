# Study 1 (Dutta et al., TMLR 2024; cotlens.studies): prompts -> sample (with its activations) -> lens
# (the reasoning spine), and pairs -> patch -> heads / sufficiency / probe (the circuits).


rule circuits_prompts:
    input:
        code=code_deps("circuits/prompts.py"),
    output:
        prompts=table("circuits", "prompts"),
    log:
        log_path("circuits_prompts", per="circuits"),
    priority: 50
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=cfg_of("circuits_prompts"),
    script:
        "../../scripts/circuits/prompts.py"


rule circuits_sample:
    input:
        unpack(model_stage("circuits/sample.py")),
        prompts=table("circuits", "prompts"),
    output:
        samples=table("circuits", "samples"),
        activations=directory(table("circuits", "activations").removesuffix(".parquet")),
    log:
        log_path("circuits_sample"),
    # the longest chain (sample -> lens, probe; pairs -> patch -> heads, sufficiency)
    priority: 50
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("circuits_sample"),
    script:
        "../../scripts/circuits/sample.py"


rule circuits_lens:
    input:
        unpack(model_stage("circuits/lens.py")),
        activations=table("circuits", "activations").removesuffix(".parquet"),
    output:
        lens=table("circuits", "lens"),
    log:
        log_path("circuits_lens"),
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("circuits_lens"),
    script:
        "../../scripts/circuits/lens.py"


rule circuits_pairs:
    input:
        unpack(model_stage("circuits/pairs.py")),
        prompts=table("circuits", "prompts"),
        samples=table("circuits", "samples"),
    output:
        pairs=table("circuits", "pairs"),
    log:
        log_path("circuits_pairs"),
    priority: 45
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("circuits_pairs"),
    script:
        "../../scripts/circuits/pairs.py"


rule circuits_patch:
    input:
        unpack(model_stage("circuits/patch.py")),
        pairs=table("circuits", "pairs"),
    output:
        patching=table("circuits", "patching"),
        pathways=table("circuits", "pathways"),
    log:
        log_path("circuits_patch"),
    priority: 45
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("circuits_patch"),
    script:
        "../../scripts/circuits/patch.py"


rule circuits_heads:
    input:
        unpack(model_stage("circuits/heads.py")),
        pairs=table("circuits", "pairs"),
    output:
        heads=table("circuits", "heads"),
    log:
        log_path("circuits_heads"),
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("circuits_heads"),
    script:
        "../../scripts/circuits/heads.py"


rule circuits_sufficiency:
    input:
        unpack(model_stage("circuits/sufficiency.py")),
        pairs=table("circuits", "pairs"),
        patching=table("circuits", "patching"),
        prompts=table("circuits", "prompts"),
    output:
        sufficiency=table("circuits", "sufficiency"),
    log:
        log_path("circuits_sufficiency"),
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("circuits_sufficiency"),
    script:
        "../../scripts/circuits/sufficiency.py"


rule circuits_probe:
    input:
        unpack(model_stage("circuits/probe.py")),
        prompts=table("circuits", "prompts"),
    output:
        probe=table("circuits", "probe"),
    log:
        log_path("circuits_probe"),
    conda:
        "../../envs/cuda.yaml"
    params:
        **model_params("circuits_probe"),
    script:
        "../../scripts/circuits/probe.py"
