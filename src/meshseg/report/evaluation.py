"""Per-structure tables of a predicted label map: Dice and volumes against the truth, or volumes."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from meshseg.image.io import check_same_grid, load_volume, write_table
from meshseg.labels import LabelClass, LabelSet, load_labelset
from meshseg.metrics import class_volumes, dice_per_class, voxel_volume


def load_label_ids(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Label ids (integers, :func:`meshseg.image.io.load_image`) and the affine of a label map."""
    return load_volume(path, labels=True)


def _load_pair(pred_path: str | os.PathLike, truth_path: str | os.PathLike):
    pred, pred_affine = load_label_ids(pred_path)
    truth, truth_affine = load_label_ids(truth_path)
    check_same_grid(pred_path, pred.shape, pred_affine, truth_path, truth.shape, truth_affine)
    return pred, truth, voxel_volume(truth_affine)


def _predicted_classes(ids: np.ndarray, labelset: LabelSet, source: str) -> np.ndarray:
    """Class indices of a predicted label map, which holds the set's output ids (``id``).

    Truth files hold source ids instead (``source_ids``, e.g. FreeSurfer's 3 and 42 for the
    ``gwm`` set's 702); an id that is no class's output id is an error naming ``source``.
    """
    by_id = LabelSet(labelset.name, tuple(replace(c, source_ids=(c.id,)) for c in labelset.classes))
    return by_id.to_classes(ids, source=source)


def _class_columns(labelset: LabelSet) -> dict[str, list]:
    """The leading columns of every per-class table: class, id, name."""
    return {
        "class": list(range(labelset.n_classes)),
        "id": [c.id for c in labelset.classes],
        "name": labelset.names,
    }


def structure_table(
    pred_path: str | os.PathLike, truth_path: str | os.PathLike, labelset: LabelSet | None = None
) -> pd.DataFrame:
    """One row per class: class, id, name, dice, predicted_mm3, true_mm3.

    ``pred_path`` holds the set's output ids, ``truth_path`` its source ids. Without a label
    set, every id present in either image is its own class (named by id).
    """
    pred_ids, truth_ids, voxel_mm3 = _load_pair(pred_path, truth_path)
    if labelset is None:
        ids = np.union1d(np.unique(pred_ids), np.unique(truth_ids))
        labelset = LabelSet(
            "ids",
            tuple(LabelClass(i, int(v), str(v), (0, 0, 0), (int(v),)) for i, v in enumerate(ids)),
        )
    pred = _predicted_classes(pred_ids, labelset, str(pred_path))
    truth = labelset.to_classes(truth_ids, source=str(truth_path))
    n = labelset.n_classes
    return pd.DataFrame(
        {
            **_class_columns(labelset),
            "dice": dice_per_class(truth, pred, n),
            "predicted_mm3": class_volumes(pred, n, voxel_mm3),
            "true_mm3": class_volumes(truth, n, voxel_mm3),
        }
    )


def volume_table(pred_path: str | os.PathLike, labelset: LabelSet) -> pd.DataFrame:
    """One row per class of a label map without truth: class, id, name, predicted_mm3."""
    ids, affine = load_label_ids(pred_path)
    classes = _predicted_classes(ids, labelset, str(pred_path))
    return pd.DataFrame(
        {
            **_class_columns(labelset),
            "predicted_mm3": class_volumes(classes, labelset.n_classes, voxel_volume(affine)),
        }
    )


@dataclass(frozen=True)
class LabelMaps:
    """One subject's predicted label maps, conformed (``prediction``) and on its own grid
    (``native``), and its truth on each grid; the truths are None for a subject without labels."""

    prediction: str | os.PathLike
    native: str | os.PathLike
    truth: str | os.PathLike | None = None
    native_truth: str | os.PathLike | None = None


def evaluate_subject(
    maps: LabelMaps, labelset_name: str, subject: str, model: str, out_path: str | os.PathLike
) -> pd.DataFrame:
    """Write one subject's metrics table (tables.STRUCTURE_COLUMNS): Dice in the conformed
    space and on the subject's own grid (``native_dice``), and volumes; without truth
    (``maps.truth`` None), the predicted volumes only."""
    labelset = load_labelset(labelset_name)
    if maps.truth is None:
        table = volume_table(maps.prediction, labelset)
    else:
        table = structure_table(maps.prediction, maps.truth, labelset)
        native = structure_table(maps.native, maps.native_truth, labelset)
        table.insert(4, "native_dice", native["dice"])
    table.insert(0, "model", model)
    table.insert(0, "subject", subject)
    write_table(table, out_path)
    return table
