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
        dice=report("results/dice.tsv", caption="../report/dice.rst", category="Tables"),
        volumes=report("results/volumes.tsv", caption="../report/volumes.rst", category="Tables"),
        comparison=report(
            "results/comparison.tsv", caption="../report/comparison.rst", category="Tables"
        ),
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


rule write_model_card:
    """Model card (Markdown + JSON) beside a checkpoint trained here: architecture, label set,
    training data and split, training config, held-out Dice, software, data licence."""
    input:
        checkpoint="results/models/{model}/checkpoint.pt",
        dice="results/dice.tsv",
        comparison="results/comparison.tsv",
        subjects="results/subjects.tsv",
    output:
        md="results/models/{model}/model_card.md",
        json="results/models/{model}/model_card.json",
    log:
        "logs/model_card/{model}.log",
    params:
        dataset=config["dataset"],
        licence=get_data_licence(),
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/write_model_card.py"
