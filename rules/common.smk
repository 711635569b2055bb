import functools
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, "../config/schema.yaml")

# The package lives in src/. Rule scripts find it through workflow/scripts/meshseg, a link
# to src/meshseg (Snakemake puts the scripts' folder on their path), so jobs run from a
# plain clone, in conda environments and on SLURM nodes alike. Parsing imports only the
# data layer (pandas, nibabel), never torch.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from meshseg.data.bids import anat_dir, output_root  # noqa: E402
from meshseg.data.datasets import data_licence, resolve_dataset  # noqa: E402

DATASET = config[config["dataset"]]  # the settings block of the chosen dataset
# Pretrained models (name -> checkpoint file) replace the trained ones: nothing is trained then.
PRETRAINED = config["pretrained"]
TRAINED = {} if PRETRAINED else config["models"]  # name -> model spec, trained here
MODELS = list(PRETRAINED or TRAINED)  # the names of the models this run compares
IS_BIDS = config["dataset"] == "bids"
# The BIDS-Derivatives dataset of a bids run (rules/bids.smk); model names become desc-<model>.
BIDS_OUT = output_root(config["bids"]).rstrip("/")
if IS_BIDS and not all(re.fullmatch("[A-Za-z0-9]+", m) for m in MODELS):
    raise ValueError(f"dataset bids: model names {MODELS} must be alphanumeric (BIDS desc labels)")


wildcard_constraints:
    subject=r"[^/]+",
    model="|".join(re.escape(m) for m in MODELS),
    anat=r"sub-[A-Za-z0-9]+(?:/ses-[A-Za-z0-9]+)?/anat",
    space="T1w|conformed",


##### paths #####

# Every file a rule writes, once; rules and input functions fill in the wildcards (path()).
PATHS = {
    "raw_t1": "resources/data/{cohort}_volumes/{subject}/t1weighted.nii.gz",
    "raw_labels": "resources/data/{cohort}_volumes/{subject}/{label_file}",
    "mindboggle_table": "resources/data/mindboggle101_subjects.tsv",
    "subjects": "results/subjects.tsv",
    "conformed_t1": "results/conformed/{subject}/t1.nii.gz",
    "conformed_labels": "results/conformed/{subject}/labels.nii.gz",
    "prepared_t1": "results/prepared/{subject}/t1.nii.gz",
    "prepared_labels": "results/prepared/{subject}/labels.nii.gz",
    "checkpoint": "results/models/{model}/checkpoint.pt",
    "training_curve": "results/models/{model}/training_curve.tsv",
    "model_card": "results/models/{model}/model_card.{ext}",
    "predicted": "results/predictions/{model}/{subject}/labels.nii.gz",
    "predicted_lut": "results/predictions/{model}/{subject}/labels_lut.txt",
    "inference_stats": "results/predictions/{model}/{subject}/inference.json",
    "predicted_native": "results/predictions/{model}/{subject}/labels_native.nii.gz",
    "metrics": "results/metrics/{model}/{subject}.tsv",
    "dice": "results/dice.tsv",
    "volumes": "results/volumes.tsv",
    "comparison": "results/comparison.tsv",
    "experiment_run": "results/experiments/{model}/{subject}.tsv",
    "experiments": "results/experiments/dice_vs_subvolumes.tsv",
    "figure": "results/figures/{name}.png",
    "reference_speed": "results/reference_speed.tsv",
    "claims": "results/claims.tsv",
    "bids_description": f"{BIDS_OUT}/dataset_description.json",
    "bids_readme": f"{BIDS_OUT}/README",
    "bids_ignore": f"{BIDS_OUT}/.bidsignore",
    "bids_lookup": f"{BIDS_OUT}/desc-{{model}}_dseg.tsv",
    "bids_dseg": f"{BIDS_OUT}/{{anat}}/{{subject}}_space-{{space}}_desc-{{model}}_dseg.nii.gz",
    "bids_sidecar": f"{BIDS_OUT}/{{anat}}/{{subject}}_space-{{space}}_desc-{{model}}_dseg.json",
    "bids_volumes": f"{BIDS_OUT}/{{anat}}/{{subject}}_desc-{{model}}_volumes.tsv",
    "bids_group_volumes": f"{BIDS_OUT}/desc-{{model}}_volumes.tsv",
}


def path(key, **wildcards):
    """``PATHS[key]`` with the given wildcards filled in and the others left as they are."""
    return expand(PATHS[key], **wildcards, allow_missing=True)[0]


def log_path(key, **wildcards):
    """The log of the job writing ``PATHS[key]``, the same path under logs/ and ending .log
    (results/prepared/{subject}/t1.nii.gz -> logs/prepared/{subject}/t1.log; the BIDS outputs'
    under logs/bids/)."""
    relative = path(key, **wildcards)
    bids_file = relative.removeprefix(f"{BIDS_OUT}/")
    relative = f"bids/{bids_file}" if bids_file != relative else relative
    relative = re.sub(r"^(results|resources)/", "", relative)
    stem = re.sub(r"\.[^/]*$", "", relative)  # every extension: .nii.gz, .{ext}
    return f"logs/{stem}.log"


##### subjects #####

# Mindboggle-101's subjects are known once fetched: the split_subjects checkpoint writes its sheet.
FETCHED = config["dataset"] == "mindboggle101"
RAW_LAYOUT = {"t1": PATHS["raw_t1"], "labels": PATHS["raw_labels"]}


def get_sheet_files(wildcards):
    """The subject sheet file, if there is one (folder and bids datasets may be split in memory)."""
    return [DATASET["sheet"]] if DATASET.get("sheet") else []


def subject_table():
    """The run's subjects: subject, cohort, split, t1, labels (meshseg.data.datasets)."""
    if FETCHED:
        checkpoints.split_subjects.get()
    sheet = DATASET.get("sheet", "")
    return resolved_table(os.stat(sheet).st_mtime_ns if os.path.exists(sheet) else None)


@functools.cache
def resolved_table(mtime):
    """The subject table, resolved again only when the sheet changes (``mtime``), e.g. when the
    Mindboggle-101 checkpoint rewrites it during the run."""
    return resolve_dataset(config, RAW_LAYOUT)


# Check the subjects as the workflow loads, before any job (Mindboggle-101's once the split
# checkpoint has written its sheet).
if not FETCHED:
    subject_table()


def subjects_in(split):
    """Subject ids of one split (train | validation | test), sorted."""
    table = subject_table()
    return sorted(table.index[table["split"] == split])


def subject_file(subject, kind):
    """A subject's t1 or labels file ('' for a folder subject without labels)."""
    table = subject_table()
    if subject not in table.index:
        raise ValueError(
            f"subject {subject!r} is not in dataset {config['dataset']!r}; "
            f"its subjects: {', '.join(table.index)}"
        )
    return table.loc[subject, kind]


def get_raw_t1(wildcards):
    return subject_file(wildcards.subject, "t1")


def has_labels(subject):
    """Every demo and Mindboggle subject has labels; folder and bids subjects may not."""
    return subject_file(subject, "labels") != ""


def get_raw_labels(wildcards):
    if not has_labels(wildcards.subject):
        raise ValueError(
            f"subject {wildcards.subject!r} has no label file in {config['dataset']}.labels "
            f"{DATASET['labels']!r}"
        )
    return subject_file(wildcards.subject, "labels")


def labelled_test_subjects():
    return [s for s in subjects_in("test") if has_labels(s)]


def get_demo_index(wildcards):
    """Demo subjects are named <cohort>-<i>; i seeds the subject."""
    match = re.fullmatch(re.escape(config["demo"]["cohort"]) + r"-(\d+)", wildcards.subject)
    if match is None:
        raise ValueError(
            f"demo subject {wildcards.subject!r} must be named {config['demo']['cohort']}-<number>"
        )
    return int(match.group(1))


##### models #####


def get_training_inputs(wildcards):
    train, validation = subjects_in("train"), subjects_in("validation")
    return {
        "train_images": [path("prepared_t1", subject=s) for s in train],
        "train_labels": [path("prepared_labels", subject=s) for s in train],
        "val_images": [path("prepared_t1", subject=s) for s in validation],
        "val_labels": [path("prepared_labels", subject=s) for s in validation],
    }


def training_steps(model):
    """Optimizer steps of one trained model: its own, else the shared train block's."""
    return TRAINED[model].get("steps", config["train"]["steps"])


def inference_mode(model):
    """vote or whole: the trained model entry's choice; pretrained models take their
    checkpoint's own (auto: whole for imported brainchop models, else vote)."""
    return "auto" if PRETRAINED else TRAINED[model].get("inference", "vote")


def get_train_config(wildcards):
    """TrainConfig fields for one model: the shared train block, the model's own steps."""
    return {
        **config["train"],
        "steps": training_steps(wildcards.model),
        "patch": config["sampling"]["patch"],
        "sd": config["sampling"]["sd"],
        **compute_settings(),
    }


def compute_settings():
    """Device, precision and memory layout, shared by training and inference."""
    return {key: config["compute"][key] for key in ("precision", "channels_last", "device")}


def get_model_params(wildcards):
    """Architecture keys of one model entry (everything but its steps and inference mode)."""
    return {k: v for k, v in TRAINED[wildcards.model].items() if k not in ("steps", "inference")}


def checkpoint_path(model):
    """A model's checkpoint: the pretrained file given in config, or the one trained here."""
    return PRETRAINED[model] if PRETRAINED else path("checkpoint", model=model)


def get_checkpoint(wildcards):
    return checkpoint_path(wildcards.model)


def get_inference_config(wildcards):
    """InferenceConfig fields: the inference block, the model's own mode (vote | whole)."""
    return {
        **config["inference"],
        "mode": inference_mode(wildcards.model),
        "sd": config["sampling"]["sd"],
        **compute_settings(),
    }


def get_gpus():
    """GPUs one training or inference job asks for: 1 if config compute.gpu is true, else 0.

    The resource is named gpu: snakemake-executor-plugin-slurm submits gpu=1 as
    `sbatch --gpus=1` and leaves gpu=0 out; a local run counts it only against --resources gpu=N.
    """
    return 1 if config["compute"]["gpu"] else 0


##### evaluation and experiments #####


def get_truth(wildcards):
    """The prepared and native label files of a subject, or nothing when it has none."""
    if not has_labels(wildcards.subject):
        return {}
    return {
        "truth": path("prepared_labels", subject=wildcards.subject),
        "native_truth": get_raw_labels(wildcards),
    }


def get_metric_tables(wildcards):
    return expand(PATHS["metrics"], model=MODELS, subject=subjects_in("test"))


def get_checkpoints(wildcards):
    return [checkpoint_path(m) for m in MODELS]


def get_inference_stats(wildcards):
    return expand(PATHS["inference_stats"], model=MODELS, subject=subjects_in("test"))


def get_experiment_runs(wildcards):
    return expand(PATHS["experiment_run"], model=MODELS, subject=labelled_test_subjects())


def get_experiment_tables(wildcards):
    """The table of Dice against the number of subvolumes, when a test subject has labels."""
    return [PATHS["experiments"]] if labelled_test_subjects() else []


def get_segmentations(wildcards):
    """Every test subject's labels on its own T1 grid, and the volume table (target segment)."""
    native = expand(PATHS["predicted_native"], model=MODELS, subject=subjects_in("test"))
    return native + [PATHS["volumes"]]


def get_data_licence():
    """Terms of the training data, for the model cards."""
    return data_licence(config["dataset"])


def get_model_cards():
    """A model card beside every checkpoint trained here (pretrained ones keep their own)."""
    if PRETRAINED or not labelled_test_subjects():
        return []
    return expand(PATHS["model_card"], model=MODELS, ext=["md", "json"])


def get_final_outputs(wildcards):
    outputs = [PATHS["comparison"], PATHS["dice"], PATHS["volumes"]]
    outputs += get_experiment_tables(None) + get_model_cards()
    return outputs + get_report_outputs() + (get_bids_outputs(None) if IS_BIDS else [])


##### BIDS derivatives #####


def bids_files(key, subject, **wildcards):
    """``PATHS[key]`` of one unit (its anat folder from its name) for every model."""
    return expand(PATHS[key], anat=anat_dir(subject), subject=subject, model=MODELS, **wildcards)


def get_bids_outputs(wildcards):
    """The whole derivatives dataset: description, lookups, group tables, and per test unit its
    label maps in both spaces with sidecars and its volume table."""
    outputs = [PATHS["bids_description"]]
    outputs += expand(PATHS["bids_lookup"], model=MODELS)
    outputs += expand(PATHS["bids_group_volumes"], model=MODELS)
    for subject in subjects_in("test"):
        outputs += bids_files("bids_dseg", subject, space=["T1w", "conformed"])
        outputs += bids_files("bids_volumes", subject)
    return outputs


def get_space_labels(wildcards):
    """The predicted labels in the dseg's space: on the T1w's grid, or conformed."""
    key = "predicted_native" if wildcards.space == "T1w" else "predicted"
    return path(key, model=wildcards.model, subject=wildcards.subject)


def get_bids_source_url():
    """bids.root as a file:// URL (the derivatives dataset's SourceDatasets)."""
    return Path(config["bids"]["root"]).resolve().as_uri()


def get_bids_source_t1(wildcards):
    """A unit's T1w image as a path inside bids.root (sub-01/anat/sub-01_T1w.nii.gz)."""
    return Path(os.path.relpath(get_raw_t1(wildcards), config["bids"]["root"])).as_posix()


def get_bids_volume_tables(wildcards):
    return [
        path("bids_volumes", anat=anat_dir(s), subject=s, model=wildcards.model)
        for s in subjects_in("test")
    ]


##### report #####


def get_report_outputs():
    """The report's figures and the claims table; figures that need truth only with labels."""
    figures = [] if PRETRAINED else ["training_curves"]
    if labelled_test_subjects():
        figures += ["dice_per_class", "volume_agreement", "dice_vs_subvolumes"]
        figures += expand("overlay_{subject}", subject=labelled_test_subjects())
    return expand(PATHS["figure"], name=figures) + [PATHS["claims"]]


def get_run_summary(wildcards):
    """What every figure's caption names (meshseg.report.figures.run_caption): each model with its
    training steps (or pretrained checkpoint) and inference mode, the data, the subvolumes."""
    models = {}
    for name in MODELS:
        if PRETRAINED:
            models[name] = {"pretrained": PRETRAINED[name]}
        else:
            models[name] = {**TRAINED[name], "steps": training_steps(name)}
        models[name]["inference"] = inference_mode(name)
    return {
        "models": models,
        "dataset": config["dataset"],
        "labelset": DATASET["labelset"],
        "test_subjects": len(subjects_in("test")),
        "n_subvolumes": config["inference"]["n_subvolumes"],
        "vote": config["inference"]["vote"],
    }


def get_training_curves(wildcards):
    return expand(PATHS["training_curve"], model=MODELS)


def get_subject_predictions(wildcards):
    return expand(PATHS["predicted"], model=MODELS, subject=wildcards.subject)


def get_reference_speed(wildcards):
    """The reference models' speed table when config report.reference_models is true."""
    return [PATHS["reference_speed"]] if config["report"]["reference_models"] else []
