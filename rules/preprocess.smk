rule conform_t1:
    """mri_convert -c: 1 mm LIA, uchar; FreeSurfer through nipype if installed, else Python.

    Group "preprocess": on a cluster (ignored locally), the chain of one subject (demo subject,
    conform and prepare, T1 and labels: 5 small jobs) is one SLURM job, and the profile's
    `group-components: preprocess=N` packs N subjects into one job, run --cores wide.
    """
    input:
        get_raw_t1,
    output:
        path("conformed_t1"),
    log:
        log_path("conformed_t1"),
    group:
        "preprocess"
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        labels=False,
        backend=config["conform"]["backend"],
    script:
        "../workflow/scripts/conform.py"


use rule conform_t1 as conform_labels with:
    input:
        get_raw_labels,
    output:
        path("conformed_labels"),
    log:
        log_path("conformed_labels"),
    params:
        labels=True,
        backend=config["conform"]["backend"],


rule prepare_t1:
    """Zero-pad to volume_size^3 (centred) and min-max normalise to [0, 1]. Group: see conform_t1."""
    input:
        path("conformed_t1"),
    output:
        path("prepared_t1"),
    log:
        log_path("prepared_t1"),
    group:
        "preprocess"
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        labels=False,
        size=config["volume_size"],
    script:
        "../workflow/scripts/prepare.py"


use rule prepare_t1 as prepare_labels with:
    input:
        path("conformed_labels"),
    output:
        path("prepared_labels"),
    log:
        log_path("prepared_labels"),
    params:
        labels=True,
        size=config["volume_size"],
