import numpy as np
import pytest

from meshseg.metrics import (class_volumes, confusion_matrix, dice_per_class, foreground_dice,
                             macro_dice, voxel_volume)


def test_dice_by_hand():
    truth = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    # class 0: TP 1, FP 1, FN 1 -> 2/4; class 1: TP 2, FP 1, FN 1 -> 4/6; class 2: 1
    np.testing.assert_allclose(dice_per_class(truth, pred, 3), [0.5, 2 / 3, 1.0])


def test_identical_disjoint_and_absent_classes():
    a = np.array([1, 1, 0])
    np.testing.assert_allclose(dice_per_class(a, a, 3), [1, 1, 1])  # class 2 absent: 1
    np.testing.assert_allclose(dice_per_class(np.array([1, 1]), np.array([2, 2]), 3), [1, 0, 0])


def test_macro_includes_background_foreground_only_present_classes():
    dice = np.array([0.99, 0.8, 1.0])
    assert macro_dice(dice) == pytest.approx(0.93)
    assert foreground_dice(dice, true_voxels=np.array([10, 5, 0])) == pytest.approx(0.8)


def test_volumes_use_the_voxel_size():
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    assert voxel_volume(affine) == 1.5
    np.testing.assert_allclose(class_volumes(np.array([0, 2, 2]), 3, 1.5), [1.5, 0, 3.0])


def test_confusion_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros(3), np.zeros(4), 2)
