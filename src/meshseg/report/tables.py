"""Aggregate tables over subjects and models: Dice (long), volumes, model comparison."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from meshseg.image.io import write_table
from meshseg.metrics import dice_summary, foreground_dice
from meshseg.nn.checkpoint import LoadedModel, load

# Columns of a per-subject metrics table (meshseg.report.evaluation.evaluate_subject).
STRUCTURE_COLUMNS = [
    "subject",
    "model",
    "class",
    "id",
    "name",
    "dice",
    "native_dice",
    "predicted_mm3",
    "true_mm3",
]
# Columns of subject_scores: one row per labelled subject and model.
SCORE_COLUMNS = [
    "subject",
    "model",
    "foreground_dice",
    "macro_dice",
    "classes_in_truth",
    "native_foreground_dice",
]
COMPARISON_COLUMNS = [
    "model",
    "arch",
    "subjects",
    "foreground_dice_mean",
    "foreground_dice_sd",
    "macro_dice_mean",
    "classes_in_truth_mean",
    "native_foreground_dice_mean",
    "parameters",
    "weight_bytes",
    "checkpoint_bytes",
    "seconds_per_subject",
    "subvolumes_per_second",
    "device",
]


def subject_scores(structures: pd.DataFrame) -> pd.DataFrame:
    """Per labelled subject and model: foreground and macro Dice over the classes in the truth
    or the prediction, the number of classes in the truth (metrics.dice_summary), and the
    foreground Dice on the subject's own grid. ``structures`` lists each subject's classes in
    order, background first."""
    rows = []
    labelled = structures[structures["true_mm3"].notna()]
    for (subject, model), group in labelled.groupby(["subject", "model"], sort=True):
        rows.append(
            {
                "subject": subject,
                "model": model,
                **dice_summary(group["dice"].to_numpy(), group["true_mm3"].to_numpy()),
                "native_foreground_dice": foreground_dice(group["native_dice"].to_numpy()),
            }
        )
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def comparison_row(
    model: str, scores: pd.DataFrame, loaded: LoadedModel, stats: Sequence[dict]
) -> dict:
    """One model's line of the comparison table."""
    own = scores[scores["model"] == model]
    seconds = np.array([s["seconds"] for s in stats])
    subvolumes = np.array([s["subvolumes"] for s in stats])
    return {
        "model": model,
        "arch": loaded.spec["arch"],
        "subjects": len(own),
        "foreground_dice_mean": own["foreground_dice"].mean(),
        "foreground_dice_sd": own["foreground_dice"].std(ddof=1) if len(own) > 1 else float("nan"),
        "macro_dice_mean": own["macro_dice"].mean(),
        "classes_in_truth_mean": own["classes_in_truth"].mean(),
        "native_foreground_dice_mean": own["native_foreground_dice"].mean(),
        "parameters": loaded.parameters,
        "weight_bytes": loaded.weight_bytes,
        "checkpoint_bytes": loaded.path.stat().st_size,
        "seconds_per_subject": seconds.mean(),
        "subvolumes_per_second": subvolumes.sum() / seconds.sum(),
        "device": "; ".join(sorted({s["device"] for s in stats})),
    }


def summarise(
    metric_paths: Sequence[str],
    checkpoint_paths: dict[str, str],
    stats_paths: dict[str, Sequence[str]],
    dice_path: str | os.PathLike,
    volumes_path: str | os.PathLike,
    comparison_path: str | os.PathLike,
) -> pd.DataFrame:
    """Write results/dice.tsv, volumes.tsv and comparison.tsv; return the comparison.

    Dice rows come from the subjects with labels; volumes from every subject (true_mm3 is
    empty for a subject without labels).
    """
    structures = pd.concat([pd.read_csv(p, sep="\t") for p in metric_paths], ignore_index=True)
    structures = structures.reindex(columns=STRUCTURE_COLUMNS)
    scores = subject_scores(structures)
    rows = []
    for model, checkpoint in checkpoint_paths.items():
        stats = [json.loads(Path(p).read_text()) for p in stats_paths[model]]
        rows.append(comparison_row(model, scores, load(checkpoint), stats))
    comparison = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    write_table(
        structures.loc[
            structures["true_mm3"].notna(),
            ["subject", "model", "class", "id", "name", "dice", "native_dice"],
        ],
        dice_path,
    )
    write_table(
        structures[["subject", "model", "class", "id", "name", "predicted_mm3", "true_mm3"]],
        volumes_path,
    )
    write_table(comparison, comparison_path)
    return comparison


def concat_tables(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> pd.DataFrame:
    """Stack TSV tables of the same columns into one TSV."""
    table = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    write_table(table, out_path)
    return table
