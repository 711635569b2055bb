"""Deterministic train / validation / test splits, stratified by cohort."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from meshseg.io import write_text
from meshseg.subjects import SPLITS


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
    table["rank"] = table.groupby("cohort").cumcount() / table.groupby("cohort")["subject"].transform("size")
    table = table.sort_values(["rank", "cohort"], kind="stable").reset_index(drop=True)
    table["split"] = np.repeat(list(SPLITS), [sizes[s] for s in SPLITS])
    return table[["subject", "cohort", "split"]].sort_values("subject").reset_index(drop=True)


def write_split(subjects: pd.DataFrame, counts: dict[str, int], seed: int, path: str | os.PathLike) -> None:
    """Write :func:`stratified_split` as the subject sheet TSV (atomically)."""
    write_text(stratified_split(subjects, counts, seed).to_csv(sep="\t", index=False), path)


def split_table_file(table_path: str | os.PathLike, counts: dict[str, int], seed: int,
                     sheet_path: str | os.PathLike) -> None:
    """Read a (subject, cohort) TSV and write its seeded, stratified subject sheet."""
    write_split(pd.read_csv(table_path, sep="\t", dtype=str), counts, seed, sheet_path)
