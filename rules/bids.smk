rule bids_description:
    """dataset_description.json (GeneratedBy: meshseg's version, each model's checkpoint and
    sha256; SourceDatasets: bids.root's URL), README and .bidsignore of the derivatives dataset."""
    input:
        checkpoints=get_checkpoints,
    output:
        description=path("bids_description"),
        readme=path("bids_readme"),
        ignore=path("bids_ignore"),
    log:
        log_path("bids_description"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        source=get_bids_source_url(),
        models=MODELS,
    script:
        "../workflow/scripts/bids_description.py"


rule bids_lookup:
    """The label set as desc-<model>_dseg.tsv (index, name, color), inherited by every dseg."""
    output:
        path("bids_lookup"),
    log:
        log_path("bids_lookup"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        labelset=DATASET["labelset"],
    script:
        "../workflow/scripts/bids_lookup.py"


rule bids_dseg:
    """One image's labels as <entities>_space-{T1w,conformed}_desc-<model>_dseg.nii.gz, with a
    sidecar naming the source T1w (Sources, SpatialReference) and the model's checkpoint."""
    input:
        labels=get_space_labels,
        checkpoint=get_checkpoint,
    output:
        nifti=path("bids_dseg"),
        json=path("bids_sidecar"),
    log:
        log_path("bids_dseg"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        t1=get_bids_source_t1,
    script:
        "../workflow/scripts/bids_dseg.py"


rule bids_volumes:
    """One image's structure volumes (index, name, volume_mm3) from its conformed labels."""
    input:
        path("predicted"),
    output:
        path("bids_volumes"),
    log:
        log_path("bids_volumes"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        labelset=DATASET["labelset"],
    script:
        "../workflow/scripts/bids_volumes.py"


rule bids_group_volumes:
    """The group table: one row per image, one column per structure (mm^3)."""
    input:
        get_bids_volume_tables,
    output:
        path("bids_group_volumes"),
    log:
        log_path("bids_group_volumes"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    params:
        units=lambda wildcards: subjects_in("test"),
    script:
        "../workflow/scripts/bids_group_volumes.py"
