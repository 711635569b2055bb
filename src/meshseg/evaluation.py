"""Compare a predicted label map with the truth: Dice and volumes per structure."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from meshseg.io import ImageError, load_volume, write_text
from meshseg.labels import LabelClass, LabelSet, load_labelset
from meshseg.metrics import class_volumes, dice_per_class, voxel_volume


def _load_pair(pred_path: str | os.PathLike, truth_path: str | os.PathLike):
    pred, pred_affine = load_volume(pred_path)
    truth, truth_affine = load_volume(truth_path)
    if pred.shape != truth.shape or not np.allclose(pred_affine, truth_affine, atol=1e-3):
        raise ImageError(pred_path, f"grid {pred.shape} does not match the truth {truth_path} {truth.shape}")
    return np.rint(pred).astype(np.int64), np.rint(truth).astype(np.int64), voxel_volume(truth_affine)


def structure_table(pred_path: str | os.PathLike, truth_path: str | os.PathLike,
                    labelset: LabelSet | None = None) -> pd.DataFrame:
    """One row per class: class, id, name, dice, predicted_mm3, true_mm3.

    Without a label set, every id present in either image is its own class (named by id).
    """
    pred_ids, truth_ids, voxel_mm3 = _load_pair(pred_path, truth_path)
    if labelset is None:
        ids = np.union1d(np.unique(pred_ids), np.unique(truth_ids))
        labelset = LabelSet("ids", tuple(LabelClass(i, int(v), str(v), (0, 0, 0), (int(v),))
                                         for i, v in enumerate(ids)))
    pred = labelset.to_classes(pred_ids, source=str(pred_path))
    truth = labelset.to_classes(truth_ids, source=str(truth_path))
    n = labelset.n_classes
    return pd.DataFrame({
        "class": np.arange(n),
        "id": [c.id for c in labelset.classes],
        "name": labelset.names,
        "dice": dice_per_class(truth, pred, n),
        "predicted_mm3": class_volumes(pred, n, voxel_mm3),
        "true_mm3": class_volumes(truth, n, voxel_mm3),
    })


def evaluate_files(pred_path: str | os.PathLike, truth_path: str | os.PathLike, labelset_name: str,
                   subject: str, model: str, out_path: str | os.PathLike) -> pd.DataFrame:
    """Write the structure table of one subject and model, with those two columns first."""
    table = structure_table(pred_path, truth_path, load_labelset(labelset_name))
    table.insert(0, "model", model)
    table.insert(0, "subject", subject)
    write_text(table.to_csv(sep="\t", index=False, float_format="%.6g"), out_path)
    return table
