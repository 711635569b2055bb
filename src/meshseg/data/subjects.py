"""The subject sheet: which subjects exist, their cohort and their split."""

from __future__ import annotations

import os

import pandas as pd

from meshseg.image.io import write_table

SPLITS = ("train", "validation", "test")
COLUMNS = ("subject", "cohort", "split")


def read_subject_sheet(path: str | os.PathLike, require_train: bool = True) -> pd.DataFrame:
    """Read and check a TSV with columns subject, cohort, split; index is the subject.

    Raises ``ValueError`` naming the file for: missing columns, no rows, duplicated or empty
    subject ids, unknown splits, or (with ``require_train``) a sheet without training subjects.
    """
    try:
        sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#").fillna("")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read the subject sheet ({err})") from None
    missing = [c for c in COLUMNS if c not in sheet.columns]
    if missing:
        raise ValueError(f"{path}: subject sheet lacks columns {missing} (needs {list(COLUMNS)})")
    if sheet.empty:
        raise ValueError(f"{path}: subject sheet has no subjects")
    if (sheet["subject"] == "").any():
        raise ValueError(f"{path}: subject sheet has rows without a subject id")
    dupes = sorted(sheet.loc[sheet["subject"].duplicated(), "subject"].unique())
    if dupes:
        raise ValueError(f"{path}: subjects listed more than once: {dupes}")
    bad = sorted(set(sheet["split"]) - set(SPLITS))
    if bad:
        raise ValueError(f"{path}: unknown split values {bad}; use {list(SPLITS)}")
    if require_train and not (sheet["split"] == "train").any():
        raise ValueError(f"{path}: no subject has split 'train'")
    return sheet.set_index("subject", drop=False).sort_index()


def write_subject_sheet(columns: dict[str, list], path: str | os.PathLike) -> None:
    """Write a subject sheet given as columns (subject, cohort, split)."""
    write_table(pd.DataFrame(columns, columns=list(COLUMNS)), path)
