# The models every study runs on: prepared (pypi, hub, local), trained (train) or built
# (tiny) here, then self-checked.


rule models_prepare:
    input:
        code=code_deps("models/prepare.py"),
    output:
        model=directory(model_dir(PREPARED)),
    log:
        log_path("models_prepare"),
    # first: three studies wait on the prepared model (Snakemake runs higher priorities first)
    priority: 100
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=model_entry,
        content=model_content,
    script:
        "../../scripts/models/prepare.py"


rule models_train:
    input:
        code=code_deps("models/train.py"),
    output:
        model=directory(model_dir(TRAINED)),
    log:
        log_path("models_train"),
    priority: 60
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=model_entry,
    script:
        "../../scripts/models/train.py"


rule models_tiny:
    input:
        code=code_deps("models/tiny.py"),
    output:
        model=directory(model_dir(TINY)),
    log:
        log_path("models_tiny"),
    priority: 100
    conda:
        "../../envs/cpu.yaml"
    params:
        cfg=model_entry,
    script:
        "../../scripts/models/tiny.py"


# The self-checks (cotlens.models.checks) of a prepared or built model. Every model stage takes
# the report as input: none starts before the checks pass (a failed check every study
# needs writes no report), and an edit of the checked code reruns the checks and what
# depends on them.
rule models_check:
    input:
        code=code_deps("models/check.py"),
        model=MODEL,
    output:
        report=CHECKS,
    log:
        log_path("models_check"),
    priority: 90
    conda:
        "../../envs/cuda.yaml"
    params:
        runtime=config["runtime"],
    script:
        "../../scripts/models/check.py"
