rule segment_subject:
    """Grid + Gaussian subvolumes, batched prediction, per-voxel majority vote."""
    input:
        checkpoint="results/models/{model}/checkpoint.pt",
        image="results/prepared/{subject}/t1.nii.gz",
    output:
        labels="results/predictions/{model}/{subject}/labels.nii.gz",
        lut="results/predictions/{model}/{subject}/labels_lut.txt",
        stats="results/predictions/{model}/{subject}/inference.json",
    log:
        "logs/segment/{model}/{subject}.log",
    params:
        inference=get_inference_config,
        patch=config["sampling"]["patch"],
    threads: min(config["compute"]["infer_threads"], workflow.cores)
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/segment.py"
