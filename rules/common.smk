import re
import sys
from pathlib import Path

from snakemake.utils import validate

validate(config, "../config/schema.yaml")

# The package lives in src/. Rule scripts find it through workflow/scripts/meshseg, a link
# to src/meshseg (Snakemake puts the scripts' folder on their path), so jobs run from a
# plain clone, in conda environments and on SLURM nodes alike.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from meshseg.subjects import read_subject_sheet  # noqa: E402

DATASET = config[config["dataset"]]  # the settings block of the chosen dataset
MODELS = config["models"]


wildcard_constraints:
    subject=r"[^/]+",
    model="|".join(re.escape(m) for m in MODELS),


def get_sheet_path():
    """The subject sheet: the demo's own, or the Mindboggle-101 split written after fetching."""
    return config["subjects"] if config["dataset"] == "demo" else DATASET["sheet"]


def subject_sheet():
    """The checked subject sheet; for Mindboggle-101 once the split checkpoint has run."""
    if config["dataset"] == "mindboggle101":
        checkpoints.split_subjects.get()
    return read_subject_sheet(get_sheet_path())


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


def get_raw_t1(wildcards):
    return raw_path(wildcards.subject, "t1weighted.nii.gz")


def get_raw_labels(wildcards):
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


def get_train_config(wildcards):
    """TrainConfig fields for one model: the shared train block, the model's own steps."""
    model = MODELS[wildcards.model]
    return {
        **config["train"],
        "steps": model.get("steps", config["train"]["steps"]),
        "patch": config["sampling"]["patch"],
        "sd": config["sampling"]["sd"],
        **compute_settings(),
    }


def compute_settings():
    """Device, precision and memory layout, shared by training and inference."""
    return {key: config["compute"][key] for key in ("precision", "channels_last", "device")}


def get_model_params(wildcards):
    """Architecture keys of one model entry (everything but its steps)."""
    return {k: v for k, v in MODELS[wildcards.model].items() if k != "steps"}


def get_inference_config(wildcards):
    return {
        **config["inference"],
        "sd": config["sampling"]["sd"],
        **compute_settings(),
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
    return expand("results/models/{model}/checkpoint.pt", model=MODELS)


def get_inference_stats(wildcards):
    return expand(
        "results/predictions/{model}/{subject}/inference.json",
        model=MODELS,
        subject=subjects_in("test"),
    )


def get_final_outputs():
    return ["results/comparison.tsv", "results/dice.tsv", "results/volumes.tsv"]
