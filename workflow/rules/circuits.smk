# Study 1 (Dutta et al., TMLR 2024; cotlens.studies): prompts -> sample -> extract -> lens
# (the reasoning spine), and pairs -> patch -> heads / sufficiency / probe (the circuits).


rule circuits_prompts:
    input:
        code=code_deps("circuits/prompts.py"),
    output:
        prompts=table("circuits", "prompts"),
    log:
        log_path("circuits_prompts", per="circuits"),
    benchmark:
        bench_path("circuits_prompts", per="circuits")
    priority: 50
    conda:
        "../../envs/cpu.yaml"
    threads: 1
    params:
        cfg=cfg_of("circuits_prompts"),
    script:
        "../../scripts/circuits/prompts.py"


rule circuits_sample:
    input:
        code=code_deps("circuits/sample.py"),
        prompts=table("circuits", "prompts"),
        model=MODEL,
        checks=CHECKS,
    output:
        samples=table("circuits", "samples"),
    log:
        log_path("circuits_sample"),
    benchmark:
        bench_path("circuits_sample")
    # the longest chain (sample -> extract -> lens; pairs -> patch -> heads, sufficiency)
    priority: 50
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_sample"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/sample.py"


rule circuits_extract:
    input:
        code=code_deps("circuits/extract.py"),
        samples=table("circuits", "samples"),
        model=MODEL,
        checks=CHECKS,
    output:
        activations=directory(table("circuits", "activations").removesuffix(".parquet")),
    log:
        log_path("circuits_extract"),
    benchmark:
        bench_path("circuits_extract")
    priority: 45
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_extract"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/extract.py"


rule circuits_lens:
    input:
        code=code_deps("circuits/lens.py"),
        activations=table("circuits", "activations").removesuffix(".parquet"),
        model=MODEL,
        checks=CHECKS,
    output:
        lens=table("circuits", "lens"),
    log:
        log_path("circuits_lens"),
    benchmark:
        bench_path("circuits_lens")
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_lens"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/lens.py"


rule circuits_pairs:
    input:
        code=code_deps("circuits/pairs.py"),
        prompts=table("circuits", "prompts"),
        samples=table("circuits", "samples"),
        model=MODEL,
        checks=CHECKS,
    output:
        pairs=table("circuits", "pairs"),
    log:
        log_path("circuits_pairs"),
    benchmark:
        bench_path("circuits_pairs")
    priority: 45
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_pairs"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/pairs.py"


rule circuits_patch:
    input:
        code=code_deps("circuits/patch.py"),
        pairs=table("circuits", "pairs"),
        model=MODEL,
        checks=CHECKS,
    output:
        patching=table("circuits", "patching"),
        pathways=table("circuits", "pathways"),
    log:
        log_path("circuits_patch"),
    benchmark:
        bench_path("circuits_patch")
    priority: 45
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_patch"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/patch.py"


rule circuits_heads:
    input:
        code=code_deps("circuits/heads.py"),
        pairs=table("circuits", "pairs"),
        model=MODEL,
        checks=CHECKS,
    output:
        heads=table("circuits", "heads"),
    log:
        log_path("circuits_heads"),
    benchmark:
        bench_path("circuits_heads")
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_heads"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/heads.py"


rule circuits_sufficiency:
    input:
        code=code_deps("circuits/sufficiency.py"),
        pairs=table("circuits", "pairs"),
        patching=table("circuits", "patching"),
        prompts=table("circuits", "prompts"),
        model=MODEL,
        checks=CHECKS,
    output:
        sufficiency=table("circuits", "sufficiency"),
    log:
        log_path("circuits_sufficiency"),
    benchmark:
        bench_path("circuits_sufficiency")
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_sufficiency"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/sufficiency.py"


rule circuits_probe:
    input:
        code=code_deps("circuits/probe.py"),
        prompts=table("circuits", "prompts"),
        model=MODEL,
        checks=CHECKS,
    output:
        probe=table("circuits", "probe"),
    log:
        log_path("circuits_probe"),
    benchmark:
        bench_path("circuits_probe")
    conda:
        "../../envs/cuda.yaml"
    threads: 2
    resources:
        mem_mb=8000,
    params:
        cfg=cfg_of("circuits_probe"),
        runtime=config["runtime"],
    script:
        "../../scripts/circuits/probe.py"
