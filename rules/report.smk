rule plot_dice:
    """Box plot of Dice per class and model over the test subjects."""
    input:
        "results/dice.tsv",
    output:
        report(
            "results/figures/dice_per_class.png",
            caption="../report/dice_per_class.rst",
            category="Accuracy",
        ),
    log:
        "logs/report/dice_per_class.log",
    params:
        run=get_run_summary,
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/plot_dice.py"


rule plot_volumes:
    """Predicted against true structure volumes, one colour per model."""
    input:
        "results/volumes.tsv",
    output:
        report(
            "results/figures/volume_agreement.png",
            caption="../report/volume_agreement.rst",
            category="Accuracy",
        ),
    log:
        "logs/report/volume_agreement.log",
    params:
        run=get_run_summary,
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/plot_volumes.py"


rule plot_dice_vs_subvolumes:
    """Dice against the number of inference subvolumes; whole-volume inference as a line."""
    input:
        get_experiment_tables,
    output:
        report(
            "results/figures/dice_vs_subvolumes.png",
            caption="../report/dice_vs_subvolumes.rst",
            category="Accuracy",
        ),
    log:
        "logs/report/dice_vs_subvolumes.log",
    params:
        run=get_run_summary,
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/plot_dice_vs_subvolumes.py"


rule plot_training_curves:
    """Training loss and validation Dice against the step, one line per model."""
    input:
        get_training_curves,
    output:
        report(
            "results/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Training",
        ),
    log:
        "logs/report/training_curves.log",
    params:
        models=list(MODELS),
        run=get_run_summary,
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/plot_training_curves.py"


rule plot_overlay:
    """Mid-brain slices of one test subject: the truth and every model's labels on the T1."""
    input:
        t1="results/prepared/{subject}/t1.nii.gz",
        truth="results/prepared/{subject}/labels.nii.gz",
        predictions=get_subject_predictions,
    output:
        report(
            "results/figures/overlay_{subject}.png",
            caption="../report/overlay.rst",
            category="Segmentations",
            labels={"subject": "{subject}"},
        ),
    log:
        "logs/report/overlay_{subject}.log",
    params:
        models=list(MODELS),
        labelset=DATASET["labelset"],
        run=get_run_summary,
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/plot_overlay.py"


rule measure_reference_speed:
    """Size and subvolumes/s of untrained MeshNet small, large and U-Net width 64.

    Timed like inference (same device, precision, memory layout; batches of 16 crops), after
    one warm-up batch; config report.speed_batches sets how many batches are timed.
    """
    output:
        report(
            "results/reference_speed.tsv",
            caption="../report/reference_speed.rst",
            category="Tables",
        ),
    log:
        "logs/report/reference_speed.log",
    params:
        labelset=DATASET["labelset"],
        batches=config["report"]["speed_batches"],
        compute=compute_settings(),
        patch=config["sampling"]["patch"],
    threads: config["compute"]["infer_threads"]  # Snakemake caps it at --cores
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=get_gpus(),
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/measure_reference_speed.py"


rule summarise_claims:
    """The seed's claims (size, speed, Dice) against this run and the reference-size models."""
    input:
        comparison="results/comparison.tsv",
        dice="results/dice.tsv",
        volumes="results/volumes.tsv",
        reference=get_reference_speed,
    output:
        report("results/claims.tsv", caption="../report/claims.rst", category="Tables"),
    log:
        "logs/report/claims.log",
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/summarise_claims.py"
