rule segment_subject:
    """Grid + Gaussian subvolumes, batched prediction, per-voxel majority vote.

    Group "per_subject": on a cluster (ignored locally), segmenting one subject with one model and
    evaluating it (evaluate_subject) are one SLURM job, and the profile's
    `group-components: per_subject=N` packs N of those pairs into one job. gpu=1 when config
    compute.gpu is true (get_gpus); the group asks for the most any of its steps asks.
    """
    input:
        checkpoint=get_checkpoint,
        image=path("prepared_t1"),
    output:
        labels=path("predicted"),
        lut=path("predicted_lut"),
        stats=path("inference_stats"),
    log:
        log_path("predicted"),
    group:
        "per_subject"
    conda:
        "../envs/meshseg.yaml"
    threads: config["compute"]["infer_threads"]  # Snakemake caps it at --cores
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=get_gpus(),
    params:
        inference=get_inference_config,
        labelset=DATASET["labelset"],
    script:
        "../workflow/scripts/segment_subject.py"


rule native_labels:
    """Predicted labels back on the subject's own T1 grid (nearest neighbour, its exact header).

    Group "per_subject": on a cluster it runs in the SLURM job that segmented the subject.
    """
    input:
        labels=path("predicted"),
        reference=get_raw_t1,
    output:
        path("predicted_native"),
    log:
        log_path("predicted_native"),
    group:
        "per_subject"
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/native.py"
