rule dice_vs_subvolumes:
    """Dice against the number of subvolumes N of the vote (and whole-volume, for MeshNet).

    One crop sequence per subject is predicted once and each N votes over its first N crops
    (meshseg.report.experiments); config experiment.subvolume_counts lists the N.
    """
    input:
        checkpoint=get_checkpoint,
        image=path("prepared_t1"),
        truth=path("prepared_labels"),
    output:
        path("experiment_run"),
    log:
        log_path("experiment_run"),
    group:
        "per_subject"
    conda:
        "../envs/meshseg.yaml"
    threads: config["compute"]["infer_threads"]  # Snakemake caps it at --cores
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=get_gpus(),
    params:
        counts=config["experiment"]["subvolume_counts"],
        inference=get_inference_config,
    script:
        "../workflow/scripts/dice_vs_subvolumes.py"


rule summarise_experiments:
    """One table of Dice against N over every test subject with labels and every model."""
    input:
        get_experiment_runs,
    output:
        path("experiments"),
    log:
        log_path("experiments"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../workflow/scripts/concat_tables.py"
