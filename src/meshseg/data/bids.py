"""A BIDS dataset as the workflow's subject table: one unit per T1w image, read through pybids.

Each T1w image that passes the entity filters (``subject``, ``session``, ``acquisition``,
``run``) is one unit, named by its entities as in its file name (``sub-01_ses-02_run-1`` for
``sub-01_ses-02_run-1_T1w.nii.gz``); several T1w images of one subject and session are all
segmented. A unit's labels are the ``*_dseg.nii.gz`` of the labels derivatives dataset with the
same subject, session, acquisition and run (and ``desc`` when ``labels_desc`` is given).

pybids is imported inside the functions: the workflow's other datasets never load it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from meshseg.data.splits import stratified_split

ENTITIES = ("subject", "session", "acquisition", "run")  # the filters, in BIDS order
NIFTI = [".nii", ".nii.gz"]
UNIT = re.compile(r"sub-(?P<subject>[A-Za-z0-9]+)(?:_ses-(?P<session>[A-Za-z0-9]+))?(?:_.*)?")


def output_root(settings: Mapping) -> str:
    """The derivatives dataset's folder: ``bids.output``, else ``<root>/derivatives/meshseg``."""
    return settings["output"] or os.path.join(settings["root"], "derivatives", "meshseg")


def anat_dir(unit: str) -> str:
    """The folder of a unit's files inside a BIDS dataset: ``sub-01/ses-02/anat``."""
    match = UNIT.fullmatch(unit)
    if match is None:
        raise ValueError(f"{unit!r} is not a BIDS unit name (sub-<label>[_ses-<label>]...)")
    session = f"ses-{match['session']}/" if match["session"] else ""
    return f"sub-{match['subject']}/{session}anat"


def _layout(root: str, what: str, derivative: bool = False):
    """pybids' index of ``root``, after checking that it is a BIDS dataset at all."""
    from bids import BIDSLayout, BIDSLayoutIndexer

    description = Path(root) / "dataset_description.json"
    if not description.is_file():
        raise ValueError(f"{what} {root}: not a BIDS dataset (no dataset_description.json)")
    try:
        json.loads(description.read_text())
        return BIDSLayout(
            root,
            is_derivative=False,
            config=["bids", "derivatives"] if derivative else ["bids"],
            indexer=BIDSLayoutIndexer(validate=False, index_metadata=False),
        )
    except Exception as err:  # pybids raises its own types for a malformed dataset
        raise ValueError(f"{what} {root}: not a readable BIDS dataset ({err})") from None


def _entity_table(files: list) -> pd.DataFrame:
    """path and the filter entities (None where absent; runs as text without padding)."""
    rows = []
    for file in files:
        entities = file.get_entities()
        row = {"path": file.path, "desc": entities.get("desc")}
        for key in ENTITIES:
            value = entities.get(key)
            row[key] = None if value is None else str(int(value) if key == "run" else value)
        rows.append(row)
    return pd.DataFrame(rows, columns=["path", "desc", *ENTITIES])


def _filter_text(settings: Mapping) -> str:
    chosen = [f"{key}={list(settings[key])}" for key in ENTITIES if settings[key]]
    return ", ".join(chosen) or "no filter"


def find_t1w(settings: Mapping) -> pd.DataFrame:
    """The T1w images of ``settings["root"]`` passing the filters: unit, path and entities.

    Raises ``ValueError`` naming the root (and the filter) when it is not BIDS or nothing passes.
    """
    root = settings["root"]
    layout = _layout(root, "bids.root")
    images = _entity_table(layout.get(suffix="T1w", datatype="anat", extension=NIFTI))
    for key in ENTITIES:
        wanted = {str(int(v)) if key == "run" else str(v) for v in settings[key]}
        if key == "subject":
            wanted = {v.removeprefix("sub-") for v in wanted}
        if wanted:
            images = images[images[key].isin(wanted)]
    if images.empty:
        raise ValueError(f"bids.root {root}: no T1w image matches the filter {_filter_text(settings)}")
    units = images["path"].map(lambda p: re.sub(r"_T1w\.nii(\.gz)?$", "", Path(p).name))
    return images.assign(unit=units).sort_values("unit").reset_index(drop=True)


def match_labels(images: pd.DataFrame, labels_root: str, desc: str = "") -> list[str]:
    """Each image's dseg from ``labels_root`` with the same entities ('' where there is none).

    Raises ``ValueError`` naming the image when several label files match it.
    """
    layout = _layout(labels_root, "bids.labels", derivative=True)
    dsegs = _entity_table(layout.get(suffix="dseg", extension=NIFTI))
    if desc:
        dsegs = dsegs[dsegs["desc"] == desc]
    keys = list(ENTITIES)
    pairs = (
        images[["path", *keys]]
        .fillna("")
        .merge(dsegs[["path", *keys]].fillna(""), on=keys, how="left", suffixes=("", "_dseg"))
    )
    found = []
    for path, matches in pairs.groupby("path", sort=False)["path_dseg"]:
        matches = sorted(matches.dropna())
        if len(matches) > 1:
            raise ValueError(
                f"{path}: several label files match it in bids.labels {labels_root} "
                f"({', '.join(matches)}); choose one with bids.labels_desc"
            )
        found.append(matches[0] if matches else "")
    return found


def bids_table(settings: Mapping, train: bool) -> pd.DataFrame:
    """The subject table of a BIDS dataset: subject (the unit), cohort (the participant),
    split, t1, labels ('' where none).

    With ``train``, the participants with labels are split by ``settings["split"]`` (all units
    of a participant in one split, so no participant is both trained on and tested); units
    without labels, and every unit with pretrained models, are test units.
    """
    images = find_t1w(settings)
    labels = (
        match_labels(images, settings["labels"], settings["labels_desc"])
        if settings["labels"]
        else [""] * len(images)
    )
    table = pd.DataFrame(
        {
            "subject": images["unit"],
            "cohort": "sub-" + images["subject"],
            "split": "test",
            "t1": images["path"],
            "labels": labels,
        }
    )
    if train:
        labelled = table[table["labels"] != ""]
        if labelled.empty:
            raise ValueError(
                f"bids.labels {settings['labels']!r}: no T1w image of bids.root "
                f"{settings['root']} has labels, so nothing can be trained; "
                "give a labels dataset or pretrained models"
            )
        participants = labelled[["cohort"]].drop_duplicates().assign(subject=lambda t: t.cohort)
        split = stratified_split(
            participants.assign(cohort="bids"), settings["split"], settings["split_seed"]
        ).set_index("subject")["split"]
        has_labels = table["labels"] != ""
        table.loc[has_labels, "split"] = table.loc[has_labels, "cohort"].map(split)
    return table.set_index("subject", drop=False)
