"""Deterministic train / validation / test splits, stratified by cohort."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from meshseg.data.subjects import SPLITS, read_subject_sheet
from meshseg.image.io import write_table

log = logging.getLogger(__name__)


def split_counts(total: int, counts: dict[str, int]) -> dict[str, int]:
    """Scale the configured split sizes to ``total`` subjects (largest remainders)."""
    wanted = np.array([counts[s] for s in SPLITS], dtype=float)
    if wanted.sum() <= 0:
        raise ValueError(f"split sizes must not all be 0: {counts}")
    share = wanted / wanted.sum() * total
    sizes = np.floor(share).astype(int)
    for i in np.argsort(-(share - sizes), kind="stable")[: total - sizes.sum()]:
        sizes[i] += 1
    return dict(zip(SPLITS, sizes.tolist()))


def stratified_split(subjects: pd.DataFrame, counts: dict[str, int], seed: int) -> pd.DataFrame:
    """Assign each subject (columns ``subject``, ``cohort``) a split.

    The split sizes follow ``counts`` scaled to the number of subjects (70/10/21 for the 101
    Mindboggle subjects). Within the sizes, every cohort contributes to each split in
    proportion to its size, and which subjects go where is drawn from ``seed``; the result
    does not depend on the order of the input rows.
    """
    table = subjects[["subject", "cohort"]].sort_values("subject").reset_index(drop=True)
    sizes = split_counts(len(table), counts)
    rng = np.random.default_rng(seed)
    table = table.iloc[rng.permutation(len(table))].reset_index(drop=True)
    # Deal subjects out cohort by cohort: position in the dealt order picks the split.
    table["rank"] = table.groupby("cohort").cumcount() / table.groupby("cohort")[
        "subject"
    ].transform("size")
    table = table.sort_values(["rank", "cohort"], kind="stable").reset_index(drop=True)
    table["split"] = np.repeat(list(SPLITS), [sizes[s] for s in SPLITS])
    return table[["subject", "cohort", "split"]].sort_values("subject").reset_index(drop=True)


def update_split(
    subjects: pd.DataFrame, previous: Mapping[str, str], counts: dict[str, int], seed: int
) -> pd.DataFrame:
    """Split ``subjects`` (columns ``subject``, ``cohort``), keeping the ``previous`` splits.

    Every subject in ``previous`` (subject -> split, e.g. a sheet edited by hand) keeps its
    split; subjects only in ``previous`` are dropped. New subjects are dealt by
    :func:`stratified_split` into what each split lacks of its size (``counts`` scaled to all
    subjects), so with nothing ``previous`` this is the plain seeded split.
    """
    table = subjects[["subject", "cohort"]]
    known = table["subject"].isin(list(previous))
    kept = table[known].assign(split=table.loc[known, "subject"].map(previous))
    new = table[~known]
    if new.empty:
        return kept.sort_values("subject").reset_index(drop=True)
    # The shortfalls sum to at least len(new): the sizes add up to len(kept) + len(new).
    have = kept["split"].value_counts()
    lacking = {s: max(n - have.get(s, 0), 0) for s, n in split_counts(len(table), counts).items()}
    dealt = stratified_split(new, lacking, seed)
    return pd.concat([kept, dealt]).sort_values("subject").reset_index(drop=True)


def split_table_file(
    table_path: str | os.PathLike, counts: dict[str, int], seed: int, sheet_path: str | os.PathLike
) -> None:
    """Write the subject sheet of a (subject, cohort) TSV (atomically); an existing sheet at
    ``sheet_path`` is updated: its subjects keep their splits (see :func:`update_split`)."""
    subjects = pd.read_csv(table_path, sep="\t", dtype=str)
    previous = {}
    if os.path.exists(sheet_path):
        previous = read_subject_sheet(sheet_path, require_train=False)["split"].to_dict()
    sheet = update_split(subjects, previous, counts, seed)
    chosen, known = set(subjects["subject"]), set(previous)
    log.info(
        "%s: %d subjects keep their split, %d new ones dealt, %d no longer chosen dropped",
        sheet_path,
        len(chosen & known),
        len(chosen - known),
        len(known - chosen),
    )
    write_table(sheet, sheet_path)
