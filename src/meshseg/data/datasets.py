"""Which subjects a run has and where their files are: one table per dataset.

:func:`resolve_dataset` turns the workflow config's chosen dataset into the subject table the
rules read (subject, cohort, split, t1, labels):

- ``demo`` and ``mindboggle101``: the subject sheet, files in the Mindboggle-101 layout
  (``<cohort>_volumes/<subject>/``) that the workflow's ``layout`` templates spell;
- ``folder``: the user's T1s found by a path pattern (:func:`find_subjects`), labels optional,
  split by their own sheet or seeded (:func:`folder_sheet`);
- ``bids``: one unit per T1w image of a BIDS dataset (:func:`meshseg.data.bids.bids_table`).

Also the Mindboggle-101 fetch as a (subject, cohort) table and each dataset's data licence.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from meshseg.data.bids import bids_table
from meshseg.data.osf import OSFFolder, fetch_mindboggle
from meshseg.data.splits import stratified_split
from meshseg.data.subjects import read_subject_sheet
from meshseg.image.io import write_table

COHORT = "folder"  # the cohort column of a folder dataset's subject sheet
COLUMNS = ["subject", "cohort", "split", "t1", "labels"]

# Terms of the training data of the two built-in datasets (docs/references.md: Data; NOTICE),
# for the model cards.
DATA_LICENCES = {
    "demo": "Synthetic subjects derived from the MNI ICBM152 2009 nonlinear symmetric template "
    "(release a), Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, "
    "Montreal Neurological Institute, McGill University; use, copying, modification and "
    "distribution permitted with that copyright notice (see NOTICE in the meshseg "
    "repository for the full terms). Not real anatomy: for testing the workflow only.",
    "mindboggle101": "Mindboggle-101 (Klein & Tourville 2012; OSF project 9ahyp): Creative Commons "
    "Attribution-NonCommercial-ShareAlike 3.0 (CC BY-NC-SA 3.0) per its release "
    "notes; the terms of the source cohorts (OASIS, NKI, MMRR) also apply.",
}
FOLDER_LICENCE = "your own data (folder or bids dataset): state its terms here"


def data_licence(dataset: str) -> str:
    """Terms of a dataset's data (a folder's are the user's to state)."""
    return DATA_LICENCES.get(dataset, FOLDER_LICENCE)


def resolve_dataset(config: Mapping, layout: Mapping[str, str]) -> pd.DataFrame:
    """The subject table of ``config["dataset"]``: subject, cohort, split, t1, labels.

    ``layout`` holds the ``t1`` and ``labels`` path templates of the demo and Mindboggle-101
    subjects (fields ``cohort``, ``subject``, ``label_file``). ``labels`` is '' for a folder or
    bids subject without a label file. With ``config["pretrained"]`` nothing is trained, so no
    training subject is required. Raises ``ValueError`` naming the sheet or the pattern.
    """
    settings, train = config[config["dataset"]], not config["pretrained"]
    if config["dataset"] == "folder":
        return _folder_table(settings, train)
    if config["dataset"] == "bids":
        return bids_table(settings, train)[COLUMNS]
    sheet = read_subject_sheet(settings["sheet"], require_train=train)
    files = {
        kind: [
            layout[kind].format(cohort=c, subject=s, label_file=settings["label_file"])
            for s, c in zip(sheet["subject"], sheet["cohort"])
        ]
        for kind in ("t1", "labels")
    }
    return sheet.assign(**files)[COLUMNS]


def _folder_table(settings: Mapping, train: bool) -> pd.DataFrame:
    """The folder dataset's subjects: its sheet's (each must have a T1), else a seeded split."""
    found = find_subjects(settings["t1"], settings["labels"]).set_index("subject")
    if not settings["sheet"]:
        sheet = folder_sheet(found.reset_index(), settings["split"], settings["split_seed"], train)
    else:
        sheet = read_subject_sheet(settings["sheet"], require_train=train)
        missing = sorted(set(sheet.index) - set(found.index))
        if missing:
            raise ValueError(
                f"{settings['sheet']}: subjects {missing} have no T1 matching "
                f"folder.t1 {settings['t1']!r}; found: {', '.join(found.index)}"
            )
    return sheet.join(found)[COLUMNS]


def _pattern_regex(pattern: str) -> re.Pattern:
    """``data/{subject}_T1w.nii.gz`` -> a regex whose group ``subject`` matches one path part."""
    if pattern.count("{subject}") != 1:
        raise ValueError(f"folder pattern {pattern!r} must contain {{subject}} exactly once")
    prefix, suffix = (re.escape(part) for part in pattern.split("{subject}"))
    return re.compile(f"{prefix}(?P<subject>[^/]+){suffix}")


def find_subjects(t1_pattern: str, labels_pattern: str = "") -> pd.DataFrame:
    """Subjects whose T1 matches ``t1_pattern``: columns subject, t1, labels ('' if none).

    ``labels_pattern`` (optional) names each subject's label file; a subject without one is
    segmented and measured but gets no Dice. Raises ``ValueError`` when nothing matches.
    """
    regex = _pattern_regex(t1_pattern)
    label_regex = _pattern_regex(labels_pattern) if labels_pattern else None
    rows = []
    for path in sorted(glob.glob(t1_pattern.replace("{subject}", "*"))):
        match = regex.fullmatch(path)
        if match is None:  # "*" crossed a folder boundary
            continue
        subject = match["subject"]
        labels = labels_pattern.replace("{subject}", subject) if label_regex else ""
        rows.append(
            {
                "subject": subject,
                "t1": path,
                "labels": labels if labels and os.path.isfile(labels) else "",
            }
        )
    if not rows:
        raise ValueError(f"folder dataset: no T1 matches the pattern {t1_pattern!r}")
    return pd.DataFrame(rows, columns=["subject", "t1", "labels"])


def folder_sheet(
    found: pd.DataFrame, counts: dict[str, int], seed: int, train: bool
) -> pd.DataFrame:
    """The subject sheet (subject, cohort, split) of the subjects :func:`find_subjects` found.

    With ``train``, the labelled subjects are split by ``counts`` and ``seed`` like any cohort;
    otherwise (pretrained models) and for subjects without labels, the split is ``test``.
    """
    table = found.assign(cohort=COHORT, split="test")[["subject", "cohort", "split"]]
    labelled = found["labels"] != ""
    if train:
        if not labelled.any():
            raise ValueError(
                "folder dataset: no subject has a label file, so nothing can be "
                "trained; give label files (folder.labels) or pretrained models"
            )
        split = stratified_split(table[labelled], counts, seed).set_index("subject")["split"]
        table.loc[labelled, "split"] = table.loc[labelled, "subject"].map(split)
    return table.set_index("subject", drop=False).sort_index()


def fetch_mindboggle_table(
    source: OSFFolder,
    cohorts: list[str],
    subjects: list[str],
    out_dir: str | os.PathLike,
    table_path: str | os.PathLike,
) -> pd.DataFrame:
    """Fetch the chosen Mindboggle-101 subjects and write their (subject, cohort) table.

    Subjects land in ``out_dir/<Cohort>_volumes/<Subject>/`` (see
    :func:`meshseg.data.osf.fetch_mindboggle`); the cohort is read back from that folder.
    """
    chosen = fetch_mindboggle(source, cohorts, subjects, out_dir)
    rows = []
    for subject in chosen:
        folder = next(Path(out_dir).glob(f"*_volumes/{subject}"))
        rows.append({"subject": subject, "cohort": folder.parent.name.removesuffix("_volumes")})
    table = pd.DataFrame(rows, columns=["subject", "cohort"])
    write_table(table, table_path)
    return table
