import functools
import os
import re
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, "../config/schema.yaml")

# The package lives in src/. Rule scripts find it through workflow/scripts/meshseg, a link
# to src/meshseg (Snakemake puts the scripts' folder on their path), so jobs run from a
# plain clone, in conda environments and on SLURM nodes alike.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from meshseg.data.folder import find_subjects, folder_sheet  # noqa: E402
from meshseg.data.subjects import read_subject_sheet  # noqa: E402
from meshseg.report.modelcard import DATA_LICENCES  # noqa: E402

DATASET = config[config["dataset"]]  # the settings block of the chosen dataset
# Pretrained models (name -> checkpoint) replace the trained ones: nothing is trained then.
PRETRAINED = config["pretrained"]
MODELS = PRETRAINED or config["models"]


wildcard_constraints:
    subject=r"[^/]+",
    model="|".join(re.escape(m) for m in MODELS),


def check_inference_modes():
    """Whole-volume inference needs a fully convolutional model: MeshNet, not the U-Net."""
    for name, model in config["models"].items():
        if not PRETRAINED and model.get("inference") == "whole" and model["arch"] != "meshnet":
            raise ValueError(
                f"config models.{name}: inference 'whole' needs arch meshnet, not {model['arch']}"
            )


check_inference_modes()


def get_sheet_path():
    """The subject sheet: the demo's own, or the Mindboggle-101 split written after fetching."""
    return config["subjects"] if config["dataset"] == "demo" else DATASET["sheet"]


def get_sheet_files(wildcards):
    """The subject sheet file, if there is one (a folder dataset may be split in memory)."""
    return [get_sheet_path()] if get_sheet_path() else []


@functools.cache
def folder_files():
    """T1 and label paths of the folder dataset's subjects (columns subject, t1, labels)."""
    return find_subjects(DATASET["t1"], DATASET["labels"]).set_index("subject", drop=False)


def subject_sheet():
    """The checked subject sheet; for Mindboggle-101 once the split checkpoint has run.

    A folder dataset without a sheet of its own is split here (seeded, labelled subjects
    only; everything is a test subject when the models are pretrained).
    """
    if config["dataset"] == "mindboggle101":
        checkpoints.split_subjects.get()
    if config["dataset"] == "folder" and not DATASET["sheet"]:
        return folder_split()
    path = get_sheet_path()
    return read_sheet(path, os.stat(path).st_mtime_ns if os.path.exists(path) else None)


@functools.cache
def read_sheet(path, mtime):
    """A subject sheet, read again only when its file changes (``mtime``), e.g. when the
    Mindboggle-101 checkpoint rewrites it during the run."""
    return read_subject_sheet(path, require_train=not PRETRAINED)


@functools.cache
def folder_split():
    """The folder dataset's seeded split of the subjects it found."""
    split = dict(DATASET["split"])
    seed = split.pop("seed")
    return folder_sheet(folder_files(), split, seed, train=not PRETRAINED)


# Check the subject sheet as the workflow loads, before any job (Mindboggle-101's is checked
# once the split checkpoint has written it).
if config["dataset"] != "mindboggle101":
    subject_sheet()


def subjects_in(split):
    """Subject ids of one split (train | validation | test), sorted."""
    sheet = subject_sheet()
    return sorted(sheet.index[sheet["split"] == split])


def raw_path(subject, name):
    """A file of a subject in the Mindboggle-101 layout: <cohort>_volumes/<subject>/<name>."""
    sheet = subject_sheet()
    if subject not in sheet.index:
        raise ValueError(f"subject {subject!r} is not in the subject sheet {get_sheet_path()}")
    return f"resources/data/{sheet.loc[subject, 'cohort']}_volumes/{subject}/{name}"


def folder_file(subject, kind):
    """The folder dataset's t1 or labels file of one subject ('' when it has no labels)."""
    files = folder_files()
    if subject not in files.index:
        raise ValueError(
            f"subject {subject!r} has no T1 matching folder.t1 {DATASET['t1']!r}; "
            f"found: {', '.join(files.index)}"
        )
    return files.loc[subject, kind]


def get_raw_t1(wildcards):
    if config["dataset"] == "folder":
        return folder_file(wildcards.subject, "t1")
    return raw_path(wildcards.subject, "t1weighted.nii.gz")


def has_labels(subject):
    """Every demo and Mindboggle subject has labels; folder subjects may not."""
    return config["dataset"] != "folder" or folder_file(subject, "labels") != ""


def get_raw_labels(wildcards):
    if config["dataset"] == "folder":
        labels = folder_file(wildcards.subject, "labels")
        if not labels:
            raise ValueError(
                f"subject {wildcards.subject!r} has no label file matching folder.labels "
                f"{DATASET['labels']!r}"
            )
        return labels
    return raw_path(wildcards.subject, DATASET["label_file"])


def get_demo_index(wildcards):
    """Demo subjects are named <cohort>-<i>; i seeds the subject."""
    match = re.fullmatch(re.escape(config["demo"]["cohort"]) + r"-(\d+)", wildcards.subject)
    if match is None:
        raise ValueError(
            f"demo subject {wildcards.subject!r} must be named {config['demo']['cohort']}-<number>"
        )
    return int(match.group(1))


def prepared(subject, kind):
    return f"results/prepared/{subject}/{kind}.nii.gz"


def get_training_inputs(wildcards):
    train, validation = subjects_in("train"), subjects_in("validation")
    return {
        "train_images": [prepared(s, "t1") for s in train],
        "train_labels": [prepared(s, "labels") for s in train],
        "val_images": [prepared(s, "t1") for s in validation],
        "val_labels": [prepared(s, "labels") for s in validation],
    }


def training_steps(model):
    """Optimizer steps of one model: its own, else the shared train block's."""
    return MODELS[model].get("steps", config["train"]["steps"])


def inference_mode(model):
    """vote or whole: the model entry's choice; pretrained models take the vote."""
    return "vote" if PRETRAINED else MODELS[model].get("inference", "vote")


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
    return {k: v for k, v in MODELS[wildcards.model].items() if k not in ("steps", "inference")}


def checkpoint_path(model):
    """A model's checkpoint: the pretrained file given in config, or the one trained here."""
    return PRETRAINED[model] if PRETRAINED else f"results/models/{model}/checkpoint.pt"


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


def get_truth(wildcards):
    """The prepared and native label files of a subject, or nothing when it has none."""
    if not has_labels(wildcards.subject):
        return {}
    return {
        "truth": prepared(wildcards.subject, "labels"),
        "native_truth": get_raw_labels(wildcards),
    }


def get_gpus():
    """GPUs one training or inference job asks for: 1 if config compute.gpu is true, else 0.

    The resource is named gpu: snakemake-executor-plugin-slurm submits gpu=1 as
    `sbatch --gpus=1` and leaves gpu=0 out; a local run counts it only against --resources gpu=N.
    """
    return 1 if config["compute"]["gpu"] else 0


def get_metric_tables(wildcards):
    return expand(
        "results/metrics/{model}/{subject}.tsv", model=MODELS, subject=subjects_in("test")
    )


def get_checkpoints(wildcards):
    return [checkpoint_path(m) for m in MODELS]


def get_inference_stats(wildcards):
    return expand(
        "results/predictions/{model}/{subject}/inference.json",
        model=MODELS,
        subject=subjects_in("test"),
    )


def labelled_test_subjects():
    return [s for s in subjects_in("test") if has_labels(s)]


def get_experiment_runs(wildcards):
    return expand(
        "results/experiments/{model}/{subject}.tsv", model=MODELS, subject=labelled_test_subjects()
    )


def get_segmentations(wildcards):
    """Every test subject's labels on its own T1 grid, and the volume table (target segment)."""
    return expand(
        "results/predictions/{model}/{subject}/labels_native.nii.gz",
        model=MODELS,
        subject=subjects_in("test"),
    ) + ["results/volumes.tsv"]


def get_data_licence():
    """Terms of the training data, for the model cards (a folder's are the user's to state)."""
    return DATA_LICENCES.get(
        config["dataset"], "your own data (folder dataset): state its terms here"
    )


def get_model_cards():
    """A model card beside every checkpoint trained here (pretrained ones keep their own)."""
    if PRETRAINED or not labelled_test_subjects():
        return []
    return expand("results/models/{model}/model_card.{ext}", model=MODELS, ext=["md", "json"])


def get_final_outputs(wildcards):
    outputs = ["results/comparison.tsv", "results/dice.tsv", "results/volumes.tsv"]
    outputs += get_experiment_tables(None) + get_model_cards()
    return outputs + get_report_outputs()


# ---- report ----


def get_report_outputs():
    """The report's figures and the claims table; figures that need truth only with labels."""
    figures = [] if PRETRAINED else ["training_curves"]
    if labelled_test_subjects():
        figures += ["dice_per_class", "volume_agreement", "dice_vs_subvolumes"]
        figures += expand("overlay_{subject}", subject=labelled_test_subjects())
    return [f"results/figures/{name}.png" for name in figures] + ["results/claims.tsv"]


def get_run_summary(wildcards):
    """What every figure's caption names (meshseg.report.figures.run_caption): each model with its
    training steps (or pretrained checkpoint) and inference mode, the data, the subvolumes."""
    models = {}
    for name, spec in MODELS.items():
        if PRETRAINED:
            models[name] = {"pretrained": spec}
        else:
            models[name] = {**spec, "steps": training_steps(name)}
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
    return expand("results/models/{model}/training_curve.tsv", model=MODELS)


def get_subject_predictions(wildcards):
    return expand(
        "results/predictions/{model}/{subject}/labels.nii.gz",
        model=MODELS,
        subject=wildcards.subject,
    )


def get_experiment_tables(wildcards):
    """The table of Dice against the number of subvolumes, when a test subject has labels."""
    return ["results/experiments/dice_vs_subvolumes.tsv"] if labelled_test_subjects() else []


def get_reference_speed(wildcards):
    """results/reference_speed.tsv when config report.reference_models is true, else nothing."""
    return ["results/reference_speed.tsv"] if config["report"]["reference_models"] else []
