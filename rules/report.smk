rule plot_dice:
    """Box plot of Dice per class and model over the test subjects."""
    input:
        path("dice"),
    output:
        report(
            path("figure", name="dice_per_class"),
            caption="../report/dice_per_class.rst",
            category="Accuracy",
        ),
    log:
        log_path("figure", name="dice_per_class"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run=get_run_summary,
    script:
        "../workflow/scripts/plot_dice.py"


rule plot_volumes:
    """Predicted against true structure volumes, one colour per model."""
    input:
        path("volumes"),
    output:
        report(
            path("figure", name="volume_agreement"),
            caption="../report/volume_agreement.rst",
            category="Accuracy",
        ),
    log:
        log_path("figure", name="volume_agreement"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run=get_run_summary,
    script:
        "../workflow/scripts/plot_volumes.py"


rule plot_dice_vs_subvolumes:
    """Dice against the number of inference subvolumes; whole-volume inference as a line."""
    input:
        get_experiment_tables,
    output:
        report(
            path("figure", name="dice_vs_subvolumes"),
            caption="../report/dice_vs_subvolumes.rst",
            category="Accuracy",
        ),
    log:
        log_path("figure", name="dice_vs_subvolumes"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        run=get_run_summary,
    script:
        "../workflow/scripts/plot_dice_vs_subvolumes.py"


rule plot_training_curves:
    """Training loss and validation Dice against the step, one line per model."""
    input:
        get_training_curves,
    output:
        report(
            path("figure", name="training_curves"),
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        log_path("figure", name="training_curves"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        models=MODELS,
        run=get_run_summary,
    script:
        "../workflow/scripts/plot_training_curves.py"


rule plot_overlay:
    """Mid-brain slices of one test subject: the truth and every model's labels on the T1."""
    input:
        t1=path("prepared_t1"),
        truth=path("prepared_labels"),
        predictions=get_subject_predictions,
    output:
        report(
            path("figure", name="overlay_{subject}"),
            caption="../report/overlay.rst",
            category="Segmentations",
            labels={"subject": "{subject}"},
        ),
    log:
        log_path("figure", name="overlay_{subject}"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=MODELS,
        labelset=DATASET["labelset"],
        run=get_run_summary,
    script:
        "../workflow/scripts/plot_overlay.py"


rule measure_reference_speed:
    """Size and subvolumes/s of untrained MeshNet small, large and U-Net width 64.

    Timed like inference (same device, precision, memory layout; batches of 16 crops), after
    one warm-up batch; config report.speed_batches sets how many batches are timed.
    """
    output:
        report(
            path("reference_speed"),
            caption="../report/reference_speed.rst",
            category="Tables",
        ),
    log:
        log_path("reference_speed"),
    conda:
        "../envs/meshseg.yaml"
    threads: config["compute"]["infer_threads"]  # Snakemake caps it at --cores
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=get_gpus(),
    params:
        labelset=DATASET["labelset"],
        batches=config["report"]["speed_batches"],
        compute=compute_settings(),
        patch=config["sampling"]["patch"],
    script:
        "../workflow/scripts/measure_reference_speed.py"


rule summarise_claims:
    """The seed's claims (size, speed, Dice) against this run and the reference-size models."""
    input:
        comparison=path("comparison"),
        dice=path("dice"),
        volumes=path("volumes"),
        reference=get_reference_speed,
    output:
        report(path("claims"), caption="../report/claims.rst", category="Tables"),
    log:
        log_path("claims"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/summarise_claims.py"
