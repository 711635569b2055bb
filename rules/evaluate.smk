rule evaluate_subject:
    """Dice per class (conformed and native space) and structure volumes (mm^3) of one
    prediction; a subject without labels (folder dataset) gets volumes only.

    Group "per_subject": on a cluster it runs in the SLURM job that segmented the subject.
    """
    input:
        unpack(get_truth),
        prediction=path("predicted"),
        native=path("predicted_native"),
    output:
        path("metrics"),
    log:
        log_path("metrics"),
    group:
        "per_subject"
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        labelset=DATASET["labelset"],
    script:
        "../workflow/scripts/evaluate.py"


rule summarise_results:
    """Long Dice and volume tables over all subjects, and one comparison row per model."""
    input:
        metrics=get_metric_tables,
        checkpoints=get_checkpoints,
        stats=get_inference_stats,
    output:
        dice=report(path("dice"), caption="../report/dice.rst", category="Tables"),
        volumes=report(path("volumes"), caption="../report/volumes.rst", category="Tables"),
        comparison=report(path("comparison"), caption="../report/comparison.rst", category="Tables"),
    log:
        log_path("dice"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        models=MODELS,
    script:
        "../workflow/scripts/summarise.py"


rule write_model_card:
    """Model card (Markdown + JSON) beside a checkpoint trained here: architecture, label set,
    training data and split, training config, held-out Dice, software, data licence."""
    input:
        checkpoint=path("checkpoint"),
        dice=path("dice"),
        comparison=path("comparison"),
        subjects=path("subjects"),
    output:
        md=path("model_card", ext="md"),
        json=path("model_card", ext="json"),
    log:
        log_path("model_card"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        dataset=config["dataset"],
        licence=get_data_licence(),
    script:
        "../workflow/scripts/write_model_card.py"
