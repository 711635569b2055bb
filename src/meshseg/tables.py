"""Aggregate tables over subjects and models: Dice (long), volumes, model comparison."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from meshseg.checkpoint import model_from_checkpoint, weight_bytes
from meshseg.io import write_text
from meshseg.metrics import foreground_dice, macro_dice
from meshseg.models import count_parameters

COMPARISON_COLUMNS = [
    "model", "arch", "subjects", "foreground_dice_mean", "foreground_dice_sd", "macro_dice_mean",
    "parameters", "weight_bytes", "checkpoint_bytes", "seconds_per_subject",
    "subvolumes_per_second", "device",
]


def _subject_scores(structures: pd.DataFrame) -> pd.DataFrame:
    """Per subject and model: foreground Dice (classes in the truth) and macro Dice (all)."""
    rows = []
    for (subject, model), group in structures.groupby(["subject", "model"], sort=True):
        dice, true = group["dice"].to_numpy(), group["true_mm3"].to_numpy()
        rows.append({"subject": subject, "model": model,
                     "foreground_dice": foreground_dice(dice, true), "macro_dice": macro_dice(dice)})
    return pd.DataFrame(rows)


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
    """Write results/dice.tsv, volumes.tsv and comparison.tsv; return the comparison."""
    structures = pd.concat([pd.read_csv(p, sep="\t") for p in metric_paths], ignore_index=True)
    scores = _subject_scores(structures)
    rows = []
    for model, checkpoint in checkpoint_paths.items():
        stats = [json.loads(Path(p).read_text()) for p in stats_paths[model]]
        rows.append(comparison_row(model, scores, checkpoint, stats))
    comparison = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    write_text(structures[["subject", "model", "class", "id", "name", "dice"]]
               .to_csv(sep="\t", index=False, float_format="%.6g"), dice_path)
    write_text(structures[["subject", "model", "class", "id", "name", "predicted_mm3", "true_mm3"]]
               .to_csv(sep="\t", index=False, float_format="%.6g"), volumes_path)
    write_text(comparison.to_csv(sep="\t", index=False, float_format="%.6g"), comparison_path)
    return comparison
