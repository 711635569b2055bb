rule make_demo_subject:
    """One synthetic subject from the MNI ICBM152 template that nilearn ships (see NOTICE).

    Group "preprocess" (see conform_t1): on a cluster it runs in its subject's preprocessing job.
    """
    output:
        t1=path("raw_t1"),
        labels=path("raw_labels", label_file=config["demo"]["label_file"]),
    log:
        log_path("raw_t1"),
    wildcard_constraints:
        cohort=re.escape(config["demo"]["cohort"]),
    group:
        "preprocess"
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        index=get_demo_index,
        seed=config["demo"]["seed"],
    script:
        "../workflow/scripts/make_demo_subject.py"


rule fetch_mindboggle:
    """Mindboggle-101 from OSF: only the archives the selection needs, resumed, retried and
    checked (size, sha256/md5) before use; only the chosen subject folders are extracted.

    A rerun with the same selection downloads nothing (archives already whole are kept).
    """
    output:
        table=path("mindboggle_table"),
    log:
        log_path("mindboggle_table"),
    conda:
        "../envs/meshseg.yaml"
    resources:
        mem_mb=2000,
        runtime=180,
    params:
        data_dir=lambda wildcards, output: Path(output.table).parent,
        api_url=config["mindboggle101"]["api_url"],
        project=config["mindboggle101"]["project"],
        folder=config["mindboggle101"]["folder"],
        cohorts=config["mindboggle101"]["cohorts"],
        subjects=config["mindboggle101"]["subjects"],
    script:
        "../workflow/scripts/fetch_mindboggle.py"


checkpoint split_subjects:
    """Seeded train / validation / test split, stratified by cohort, as the subject sheet.

    A checkpoint: which subjects exist is known only after fetching. The sheet follows the
    fetched table, so it is updated whenever fetch_mindboggle runs again, e.g. because
    mindboggle101.cohorts or .subjects changed. (The table is not ancient(): Snakemake 9 then
    skips this job's own params check whenever the fetch reruns.) The sheet is update()d, not
    replaced: subjects already in it keep their split, so a hand-edited split survives every
    rerun; subjects no longer chosen are dropped; new ones are dealt, seeded and by cohort,
    into what each split lacks of its scaled size. Delete the sheet to draw the split again.
    """
    input:
        path("mindboggle_table"),
    output:
        update(config["mindboggle101"]["sheet"]),
    log:
        "logs/data/split_subjects.log",
    conda:
        "../envs/meshseg.yaml"
    params:
        split=config["mindboggle101"]["split"],
        seed=config["mindboggle101"]["split_seed"],
    script:
        "../workflow/scripts/split_subjects.py"


rule record_subjects:
    """The subject sheet this run used (subject, cohort, split), whatever the dataset: the
    demo's, the Mindboggle-101 split, or a folder's seeded split; the model cards cite it."""
    input:
        get_sheet_files,
    output:
        path("subjects"),
    log:
        log_path("subjects"),
    conda:
        "../envs/meshseg.yaml"
    params:
        sheet=lambda wildcards: subject_table()[["subject", "cohort", "split"]].to_dict("list"),
    script:
        "../workflow/scripts/record_subjects.py"
