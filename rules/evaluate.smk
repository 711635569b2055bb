rule evaluate_subject:
    """Dice per class (conformed and native space) and structure volumes (mm^3) of one
    prediction; a subject without labels (folder dataset) gets volumes only.

    Group "segment": on a cluster it runs in the SLURM job that segmented the subject.
    """
    input:
        unpack(get_truth),
        prediction="results/predictions/{model}/{subject}/labels.nii.gz",
        native="results/predictions/{model}/{subject}/labels_native.nii.gz",
    output:
        "results/metrics/{model}/{subject}.tsv",
    log:
        "logs/evaluate/{model}/{subject}.log",
    params:
        labelset=DATASET["labelset"],
    resources:
        mem_mb=1500,
        runtime=10,
    group:
        "segment"
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/evaluate.py"


rule summarise_results:
    """Long Dice and volume tables over all subjects, and one comparison row per model."""
    input:
        metrics=get_metric_tables,
        checkpoints=get_checkpoints,
        stats=get_inference_stats,
    output:
        dice="results/dice.tsv",
        volumes="results/volumes.tsv",
        comparison="results/comparison.tsv",
    log:
        "logs/summarise.log",
    params:
        models=list(MODELS),
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/summarise.py"
