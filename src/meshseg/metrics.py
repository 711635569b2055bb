"""Overlap and volume measures on class-index volumes (pure numpy)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` voxel counts; rows are truth, columns prediction."""
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
    codes = truth.astype(np.int64).ravel() * n_classes + pred.astype(np.int64).ravel()
    return np.bincount(codes, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def dice_per_class(truth: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Dice = 2TP / (2TP + FP + FN) per class; NaN for a class absent from both.

    Catalyst.Neuro scores such a class 1, which lifts a macro mean over many classes; here it
    has no score and the means below leave it out.
    """
    return dice_from_confusion(confusion_matrix(truth, pred, n_classes))


def dice_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class Dice of a ``(C, C)`` confusion matrix (absent from both: NaN)."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # (TP + FP) + (TP + FN)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom == 0, np.nan, 2 * tp / denom)


def _mean_of_scored(dice: np.ndarray) -> float:
    scored = dice[~np.isnan(dice)]
    return float(scored.mean()) if scored.size else float("nan")


def macro_dice(dice: np.ndarray) -> float:
    """Mean Dice over the classes in the truth or the prediction, background included."""
    return _mean_of_scored(np.asarray(dice, dtype=np.float64))


def foreground_dice(dice: np.ndarray) -> float:
    """Mean Dice over the foreground classes (index > 0) in the truth or the prediction.

    A class predicted but absent from the truth scores 0 and counts; one in neither does not.
    """
    return _mean_of_scored(np.asarray(dice, dtype=np.float64)[1:])


def dice_summary(dice: np.ndarray, true_sizes: np.ndarray) -> dict[str, float]:
    """One subject's foreground and macro Dice, and how many classes (background included)
    its truth holds (``true_sizes``: voxels or mm^3 per class); the macro averages over
    those and any predicted but absent from the truth."""
    return {
        "foreground_dice": foreground_dice(dice),
        "macro_dice": macro_dice(dice),
        "classes_in_truth": int(np.count_nonzero(np.asarray(true_sizes) > 0)),
    }


def class_volumes(classes: np.ndarray, n_classes: int, voxel_mm3: float) -> np.ndarray:
    """Volume of each class in mm^3."""
    return (
        np.bincount(classes.astype(np.int64).ravel(), minlength=n_classes)[:n_classes] * voxel_mm3
    )


def voxel_volume(affine: np.ndarray) -> float:
    """Volume of one voxel in mm^3 from a vox2ras affine."""
    return float(abs(np.linalg.det(affine[:3, :3])))
