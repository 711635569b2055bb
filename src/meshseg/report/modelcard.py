"""Model cards: what a trained checkpoint is, what it was trained on, and how well it does.

One card per model, as JSON (for programs) and Markdown (for people), built from the
checkpoint, the held-out per-subject metrics TSVs, ``results/comparison.tsv`` and the
subject sheet.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

import nibabel
import numpy as np
import pandas as pd
import torch

from meshseg import __version__
from meshseg.data.subjects import SPLITS, read_subject_sheet
from meshseg.image.io import write_text
from meshseg.nn.checkpoint import LoadedModel
from meshseg.nn.models import model_variant

METRICS_COLUMNS = ["subject", "model", "class", "id", "name", "dice"]


@dataclass(frozen=True)
class CardSources:
    """The tables a card is read from beside the checkpoint: held-out per-subject metrics,
    ``results/comparison.tsv`` and the subject sheet."""

    metrics: Sequence[str | os.PathLike]
    comparison: str | os.PathLike
    subjects: str | os.PathLike


@dataclass(frozen=True)
class CardFiles:
    """Where :func:`write_model_card` writes the card: Markdown and JSON."""

    md: str | os.PathLike
    json: str | os.PathLike


def model_card(
    loaded: LoadedModel, model: str, sources: CardSources, dataset: str, data_licence: str
) -> dict:
    """The card of ``model`` (its name in the metrics and comparison tables) as plain data.

    Held-out Dice per class is the mean and sample sd over the subjects of the metrics
    tables; the foreground and macro Dice come from the model's comparison row.
    """
    spec, labelset, state = loaded.spec, loaded.labelset, loaded.info
    sheet = read_subject_sheet(sources.subjects)
    splits = {s: sheet.index[sheet["split"] == s].tolist() for s in SPLITS}
    return {
        "model": {
            "name": model,
            "arch": spec["arch"],
            "variant": model_variant(spec),
            "config": spec,
            "parameters": loaded.parameters,
            "weight_bytes": loaded.weight_bytes,
            "meshseg_version": state.get("meshseg_version"),
            "source": state.get("source"),  # where an imported network comes from
            "preprocess": loaded.preprocess,
        },
        "labels": {
            "labelset": labelset.name,
            "classes": [{"class": c.index, "id": c.id, "name": c.name} for c in labelset.classes],
        },
        "training_data": {
            "dataset": dataset,
            "licence": data_licence,
            "subjects": splits,
            "counts": {s: len(ids) for s, ids in splits.items()},
            "training_images": state.get("train", []),
        },
        "training": {
            "steps": state["step"],
            "config": state.get("train_config", {}),
            "device": state.get("device"),
        },
        "evaluation": _evaluation(model, sources.metrics, sources.comparison),
        "software": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "meshseg": __version__,
            "numpy": np.__version__,
            "nibabel": nibabel.__version__,
        },
    }


def write_model_card(
    loaded: LoadedModel,
    model: str,
    sources: CardSources,
    dataset: str,
    data_licence: str,
    files: CardFiles,
) -> dict:
    """Write :func:`model_card` as JSON and Markdown (atomically); return it as written."""
    card = model_card(loaded, model, sources, dataset, data_licence)
    text = json.dumps(card, indent=2, allow_nan=False) + "\n"
    write_text(text, files.json)
    write_text(markdown(card), files.md)
    return json.loads(text)


def markdown(card: dict) -> str:
    """The card as a Markdown page."""
    m, data, train, ev = card["model"], card["training_data"], card["training"], card["evaluation"]
    lines = [
        f"# Model card: {m['name']}",
        "",
        f"{m['arch']} ({m['variant']}): {m['parameters']:,} parameters, "
        f"{m['weight_bytes']:,} bytes of weights, label set `{card['labels']['labelset']}`. "
        "For research: not for clinical use.",
        "",
        *(
            [
                f"Imported from `{m['source']['folder']}` ({m['source']['format']}): trained "
                "elsewhere, not by meshseg; its training data and steps are not known here.",
                "",
            ]
            if m.get("source")
            else []
        ),
        f"Input normalisation {m['preprocess']['normalisation']['name']}, "
        f"{m['preprocess']['inference']} inference"
        + (", largest connected component kept." if m["preprocess"]["largest_component"] else "."),
        "",
        "## Classes",
        "",
        "| class | id | name |",
        "|---|---|---|",
        *(f"| {c['class']} | {c['id']} | {c['name']} |" for c in card["labels"]["classes"]),
        "",
        "## Training data",
        "",
        f"Dataset `{data['dataset']}`. Licence: {data['licence']}",
        "",
        *(
            f"- {split} ({data['counts'][split]}): {', '.join(ids) or '-'}"
            for split, ids in data["subjects"].items()
        ),
        "",
        "## Training",
        "",
        f"{train['steps']} steps on {train['device'] or 'an unrecorded device'}.",
        "",
        *(f"- {key}: {value}" for key, value in train["config"].items()),
        "",
        "## Held-out evaluation",
        "",
        f"{ev['subjects']} subjects ({', '.join(ev['subject_ids'])}): foreground Dice "
        f"{_number(ev['foreground_dice_mean'])} (sd {_number(ev['foreground_dice_sd'])}), "
        f"macro Dice {_number(ev['macro_dice_mean'])}, "
        f"{_number(ev['seconds_per_subject'], 1)} s per subject on {ev['device']}.",
        "",
        "| class | id | name | Dice mean | Dice sd |",
        "|---|---|---|---|---|",
        *(
            f"| {c['class']} | {c['id']} | {c['name']} | {_number(c['dice_mean'])} "
            f"| {_number(c['dice_sd'])} |"
            for c in ev["classes"]
        ),
        "",
        "## Software",
        "",
        ", ".join(f"{name} {version}" for name, version in card["software"].items()),
        "",
    ]
    return "\n".join(lines)


def _evaluation(
    model: str, metrics_paths: Sequence[str | os.PathLike], comparison_path: str | os.PathLike
) -> dict:
    """Per-class Dice mean/sd over the held-out subjects, and the model's comparison row."""
    tables = []
    for path in metrics_paths:
        table = pd.read_csv(path, sep="\t")
        if not set(METRICS_COLUMNS) <= set(table.columns):
            raise ValueError(
                f"{path}: metrics need the columns {METRICS_COLUMNS}, got {list(table.columns)}"
            )
        tables.append(table)
    metrics = pd.concat(tables, ignore_index=True)
    metrics = metrics[(metrics["model"] == model) & metrics["dice"].notna()]  # labelled subjects
    if metrics.empty:
        raise ValueError(f"no metrics of model {model!r} in {[str(p) for p in metrics_paths]}")
    comparison = pd.read_csv(comparison_path, sep="\t")
    row = comparison[comparison["model"] == model]
    if row.empty:
        raise ValueError(
            f"{comparison_path}: no row for model {model!r} "
            f"(models: {comparison['model'].tolist()})"
        )
    per_class = metrics.groupby(["class", "id", "name"], sort=True)["dice"].agg(
        ["mean", "std", "count"]
    )
    row = row.iloc[0]
    return {
        "subjects": int(metrics["subject"].nunique()),
        "subject_ids": sorted(metrics["subject"].unique().tolist()),
        "classes": [
            {
                "class": int(c),
                "id": int(i),
                "name": n,
                "dice_mean": _float(r["mean"]),
                "dice_sd": _float(r["std"]),
                "subjects": int(r["count"]),
            }
            for (c, i, n), r in per_class.iterrows()
        ],
        **{
            key: _float(row[key])
            for key in (
                "foreground_dice_mean",
                "foreground_dice_sd",
                "macro_dice_mean",
                "seconds_per_subject",
                "subvolumes_per_second",
            )
        },
        "device": str(row["device"]),
    }


def _float(value) -> float | None:
    """A float for JSON; NaN (e.g. the sd of one subject) becomes None (null)."""
    value = float(value)
    return None if math.isnan(value) else value


def _number(value: float | None, digits: int = 4) -> str:
    """``value`` with ``digits`` decimals, or n/a for a missing value."""
    return "n/a" if value is None else f"{value:.{digits}f}"
