"""A small BIDS dataset for the tests: two subjects, one with two sessions, one with two runs,
and a derivatives dataset of labels (``*_desc-tissue_dseg.nii.gz``) for all but one image."""

from __future__ import annotations

import json
from pathlib import Path

from meshseg.data.demo import make_demo_subject
from tests.conftest import small_t1

# The T1w images (unit names) and whether the labels dataset has a dseg for each.
IMAGES = {
    "sub-01_ses-1": True,
    "sub-01_ses-2": True,
    "sub-02_run-1": True,
    "sub-02_run-2": False,
}
LABELS = "derivatives/labels"  # the labels dataset, inside the root


def anat(root: Path, unit: str) -> Path:
    """The anat folder of ``unit`` under ``root`` (sub-01_ses-1 -> sub-01/ses-1/anat)."""
    parts = unit.split("_")
    return root.joinpath(*[p for p in parts if p.startswith(("sub-", "ses-"))], "anat")


def write_json(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def make_bids_dataset(root: Path, demo: bool = False) -> Path:
    """Write the dataset to ``root``: demo subjects (real brains, for the workflow) or, by
    default, small random images (enough for indexing); returns ``root``."""
    write_json({"Name": "meshseg test", "BIDSVersion": "1.10.0"}, root / "dataset_description.json")
    write_json(
        {
            "Name": "meshseg test labels",
            "BIDSVersion": "1.10.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "meshseg.data.demo"}],
        },
        root / LABELS / "dataset_description.json",
    )
    for index, (unit, labelled) in enumerate(IMAGES.items(), start=1):
        t1 = anat(root, unit) / f"{unit}_T1w.nii.gz"
        labels = anat(root / LABELS, unit) / f"{unit}_desc-tissue_dseg.nii.gz"
        if demo:
            make_demo_subject(index, 7, t1, labels)
        else:
            small_t1(t1), small_t1(labels)
        if not labelled:
            labels.unlink()
    return root
