rule make_demo_subject:
    """One synthetic subject from the MNI ICBM152 template that nilearn ships (see NOTICE).

    Group "preprocess" (see conform_t1): on a cluster it runs in its subject's preprocessing job.
    """
    output:
        t1="resources/data/{cohort}_volumes/{subject}/t1weighted.nii.gz",
        labels=f"resources/data/{{cohort}}_volumes/{{subject}}/{config['label_file']}",
    log:
        "logs/demo/{cohort}/{subject}.log",
    wildcard_constraints:
        cohort=re.escape(config["demo"]["cohort"]),
    params:
        index=get_demo_index,
        seed=config["demo"]["seed"],
    resources:
        mem_mb=1000,
        runtime=10,
    group:
        "preprocess"
    conda:
        "../envs/meshseg.yaml"
    script:
        "../workflow/scripts/make_demo_subject.py"
