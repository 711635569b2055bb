"""Aggregate tables over subjects and models: Dice (long), volumes, model comparison."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from meshseg.checkpoint import model_from_checkpoint, weight_bytes
from meshseg.io import write_table
from meshseg.metrics import foreground_dice, macro_dice
from meshseg.models import count_parameters

# Columns of a per-subject metrics table (meshseg.evaluation.evaluate_subject).
STRUCTURE_COLUMNS = ["subject", "model", "class", "id", "name", "dice", "native_dice",
                     "predicted_mm3", "true_mm3"]
COMPARISON_COLUMNS = [
    "model", "arch", "subjects", "foreground_dice_mean", "foreground_dice_sd", "macro_dice_mean",
    "native_foreground_dice_mean", "parameters", "weight_bytes", "checkpoint_bytes", "seconds_per_subject",
    "subvolumes_per_second", "device",
]


def subject_scores(structures: pd.DataFrame) -> pd.DataFrame:
    """Per labelled subject and model: foreground Dice (classes in the truth, conformed and
    native space) and macro Dice (all classes)."""
    rows = []
    labelled = structures[structures["true_mm3"].notna()]
    for (subject, model), group in labelled.groupby(["subject", "model"], sort=True):
        dice, true = group["dice"].to_numpy(), group["true_mm3"].to_numpy()
        rows.append({"subject": subject, "model": model,
                     "foreground_dice": foreground_dice(dice, true), "macro_dice": macro_dice(dice),
                     "native_foreground_dice": foreground_dice(group["native_dice"].to_numpy(), true)})
    return pd.DataFrame(rows, columns=["subject", "model", "foreground_dice", "macro_dice",
                                       "native_foreground_dice"])


def comparison_row(model: str, scores: pd.DataFrame, checkpoint: str | os.PathLike,
                   stats: Sequence[dict]) -> dict:
    """One model's line of the comparison table."""
    network, _, state = model_from_checkpoint(checkpoint)
    own = scores[scores["model"] == model]
    seconds = np.array([s["seconds"] for s in stats])
    subvolumes = np.array([s["subvolumes"] for s in stats])
    return {
        "model": model,
        "arch": state["model_config"]["arch"],
        "subjects": len(own),
        "foreground_dice_mean": own["foreground_dice"].mean(),
        "foreground_dice_sd": own["foreground_dice"].std(ddof=1) if len(own) > 1 else float("nan"),
        "macro_dice_mean": own["macro_dice"].mean(),
        "native_foreground_dice_mean": own["native_foreground_dice"].mean(),
        "parameters": count_parameters(network),
        "weight_bytes": weight_bytes(network),
        "checkpoint_bytes": Path(checkpoint).stat().st_size,
        "seconds_per_subject": seconds.mean(),
        "subvolumes_per_second": subvolumes.sum() / seconds.sum(),
        "device": "; ".join(sorted({s["device"] for s in stats})),
    }


def summarise(metric_paths: Sequence[str], checkpoint_paths: dict[str, str],
              stats_paths: dict[str, Sequence[str]], dice_path: str | os.PathLike,
              volumes_path: str | os.PathLike, comparison_path: str | os.PathLike) -> pd.DataFrame:
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
        rows.append(comparison_row(model, scores, checkpoint, stats))
    comparison = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    write_table(structures.loc[structures["true_mm3"].notna(),
                               ["subject", "model", "class", "id", "name", "dice", "native_dice"]], dice_path)
    write_table(structures[["subject", "model", "class", "id", "name", "predicted_mm3", "true_mm3"]],
                volumes_path)
    write_table(comparison, comparison_path)
    return comparison


def concat_tables(paths: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> pd.DataFrame:
    """Stack TSV tables of the same columns into one TSV."""
    table = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    write_table(table, out_path)
    return table
