"""A BIDS dataset as the workflow's subject table: one unit per T1w image, read through pybids.

Each T1w image that passes the entity filters (``subject``, ``session``, ``acquisition``,
``run``) is one unit, named by its entities as in its file name (``sub-01_ses-02_run-1`` for
``sub-01_ses-02_run-1_T1w.nii.gz``); several T1w images of one subject and session are all
segmented. A unit's labels are the ``*_dseg.nii.gz`` of the labels derivatives dataset with the
same subject, session, acquisition and run, on the T1w's grid (no ``space`` entity, or
``space-T1w``), and with ``desc`` when ``labels_desc`` is given.

pybids is imported inside the functions: the workflow's other datasets never load it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from meshseg.data.splits import stratified_split

if TYPE_CHECKING:
    from bids import BIDSLayout

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


def _layout(root: str, derivative: bool = False) -> BIDSLayout:
    """pybids' index of ``root`` (file names only), after checking that it is BIDS at all."""
    from bids import BIDSLayout, BIDSLayoutIndexer

    description = Path(root) / "dataset_description.json"
    if not description.is_file():
        raise ValueError(f"{root}: not a BIDS dataset (no dataset_description.json)")
    try:
        json.loads(description.read_text())
    except ValueError as err:
        raise ValueError(f"{description}: not valid JSON ({err})") from None
    return BIDSLayout(
        root,
        is_derivative=False,  # True would also demand GeneratedBy of a labels dataset
        config=["bids", "derivatives"] if derivative else ["bids"],
        indexer=BIDSLayoutIndexer(validate=False, index_metadata=False),
    )


def _entity_table(files: list) -> pd.DataFrame:
    """path, desc, space and the filter entities of each file (None where absent; runs as
    unpadded numbers, like the filters)."""
    rows = []
    for file in files:
        entities = file.get_entities()
        row = {"path": file.path, "desc": entities.get("desc"), "space": entities.get("space")}
        for key in ENTITIES:
            value = entities.get(key)
            row[key] = None if value is None else _label(key, value)
        rows.append(row)
    return pd.DataFrame(rows, columns=["path", "desc", "space", *ENTITIES])


def _label(key: str, value: object) -> str:
    """An entity value as the filters compare it: runs unpadded, subjects without "sub-"."""
    return str(int(value)) if key == "run" else str(value).removeprefix("sub-")


def find_t1w(settings: Mapping) -> pd.DataFrame:
    """The T1w images of ``settings["root"]`` passing the filters: path, entities and unit.

    Raises ``ValueError`` naming the root, and the filter when nothing passes it.
    """
    root = settings["root"]
    images = _entity_table(_layout(root).get(suffix="T1w", datatype="anat", extension=NIFTI))
    chosen = {key: settings[key] for key in ENTITIES if settings[key]}
    for key, values in chosen.items():
        images = images[images[key].isin({_label(key, v) for v in values})]
    if images.empty:
        what = " ".join(f"{key}={list(values)}" for key, values in chosen.items())
        raise ValueError(
            f"{root}: no T1w image matches the filter {what}"
            if chosen
            else f"{root}: no T1w image (sub-<label>/[ses-<label>/]anat/*_T1w.nii[.gz])"
        )
    units = images["path"].map(lambda p: re.sub(r"_T1w\.nii(\.gz)?$", "", Path(p).name))
    twins = sorted(units[units.duplicated()])
    if twins:
        raise ValueError(f"{root}: T1w images {twins} are there as both .nii and .nii.gz")
    return images.assign(unit=units).sort_values("unit").reset_index(drop=True)


def match_labels(images: pd.DataFrame, labels_root: str, desc: str = "") -> list[str]:
    """Each image's dseg in ``labels_root`` ('' where there is none): the one with the same
    subject, session, acquisition and run, on the T1w's grid (no space entity, or space-T1w),
    and with ``desc`` when given.

    Raises ``ValueError`` naming the image when several label files match it.
    """
    dsegs = _entity_table(_layout(labels_root, derivative=True).get(suffix="dseg", extension=NIFTI))
    keep = dsegs["space"].fillna("T1w") == "T1w"
    if desc:
        keep &= dsegs["desc"] == desc
    dsegs = dsegs[keep]
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
                f"{path}: several label files of bids.labels {labels_root} match it "
                f"({', '.join(matches)}); choose one with bids.labels_desc"
            )
        found.append(matches[0] if matches else "")
    return found


def bids_table(settings: Mapping, train: bool) -> pd.DataFrame:
    """The subject table of a BIDS dataset: subject (the unit), cohort (the participant),
    split, t1, labels ('' where none).

    With ``train``, the participants with labels are split by ``settings["split"]`` (all
    labelled units of a participant in one split, so none is both trained on and scored);
    units without labels (segmented and measured, never scored), and every unit when the
    models are pretrained, are test units.
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
        labelled = table["labels"] != ""
        if not labelled.any():
            raise ValueError(
                f"{settings['labels'] or settings['root']}: no T1w image has labels (bids.labels), "
                "so nothing can be trained; give a labels dataset or pretrained models"
            )
        participants = table.loc[labelled, "cohort"].drop_duplicates()
        split = stratified_split(
            pd.DataFrame({"subject": participants, "cohort": "bids"}),
            settings["split"],
            settings["split_seed"],
        ).set_index("subject")["split"]
        table.loc[labelled, "split"] = table.loc[labelled, "cohort"].map(split)
    return table.set_index("subject", drop=False)
