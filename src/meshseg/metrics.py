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
    """Dice = 2TP / (2TP + FP + FN) per class; a class absent from both scores 1.

    This is Catalyst.Neuro's convention (REFERENCE.md section 1.6).
    """
    return dice_from_confusion(confusion_matrix(truth, pred, n_classes))


def dice_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class Dice of a ``(C, C)`` confusion matrix (absent from both: 1)."""
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)  # (TP + FP) + (TP + FN)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom == 0, 1.0, 2 * tp / denom)


def macro_dice(dice: np.ndarray) -> float:
    """The reference's "macro DICE": the mean over all classes, background included."""
    return float(np.mean(dice))


def foreground_dice(dice: np.ndarray, true_voxels: np.ndarray) -> float:
    """Mean Dice over the foreground classes (index > 0) present in the truth."""
    present = np.flatnonzero(true_voxels > 0)
    present = present[present > 0]
    return float(np.mean(dice[present])) if present.size else float("nan")


def class_volumes(classes: np.ndarray, n_classes: int, voxel_mm3: float) -> np.ndarray:
    """Volume of each class in mm^3."""
    return np.bincount(classes.astype(np.int64).ravel(), minlength=n_classes)[:n_classes] * voxel_mm3


def voxel_volume(affine: np.ndarray) -> float:
    """Volume of one voxel in mm^3 from a vox2ras affine."""
    return float(abs(np.linalg.det(affine[:3, :3])))
