"""The ``folder`` dataset: the user's own T1s (labels optional), found by a path pattern."""

from __future__ import annotations

import glob
import os
import re

import pandas as pd

from meshseg.data.splits import stratified_split

COHORT = "folder"  # the cohort column of a folder dataset's subject sheet


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
        rows.append({"subject": subject, "t1": path,
                     "labels": labels if labels and os.path.isfile(labels) else ""})
    if not rows:
        raise ValueError(f"folder dataset: no T1 matches the pattern {t1_pattern!r}")
    return pd.DataFrame(rows, columns=["subject", "t1", "labels"])


def folder_sheet(found: pd.DataFrame, counts: dict[str, int], seed: int, train: bool) -> pd.DataFrame:
    """The subject sheet (subject, cohort, split) of the subjects :func:`find_subjects` found.

    With ``train``, the labelled subjects are split by ``counts`` and ``seed`` like any cohort;
    otherwise (pretrained models) and for subjects without labels, the split is ``test``.
    """
    table = found.assign(cohort=COHORT, split="test")[["subject", "cohort", "split"]]
    labelled = found["labels"] != ""
    if train:
        if not labelled.any():
            raise ValueError("folder dataset: no subject has a label file, so nothing can be "
                             "trained; give label files (folder.labels) or pretrained models")
        split = stratified_split(table[labelled], counts, seed).set_index("subject")["split"]
        table.loc[labelled, "split"] = table.loc[labelled, "subject"].map(split)
    return table.set_index("subject", drop=False).sort_index()
