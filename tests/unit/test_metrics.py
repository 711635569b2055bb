import numpy as np
import pytest

from meshseg.metrics import (
    class_volumes,
    confusion_matrix,
    dice_per_class,
    dice_summary,
    foreground_dice,
    macro_dice,
    voxel_volume,
)


def test_dice_by_hand():
    truth = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    # class 0: TP 1, FP 1, FN 1 -> 2/4; class 1: TP 2, FP 1, FN 1 -> 4/6; class 2: 1
    np.testing.assert_allclose(dice_per_class(truth, pred, 3), [0.5, 2 / 3, 1.0])


def test_identical_disjoint_and_absent_classes():
    a = np.array([1, 1, 0])
    np.testing.assert_allclose(
        dice_per_class(a, a, 3), [1, 1, np.nan]
    )  # class 2 in neither: no score
    np.testing.assert_allclose(
        dice_per_class(np.array([1, 1]), np.array([2, 2]), 3), [np.nan, 0, 0]
    )


def test_macro_dice_skips_classes_absent_from_both():
    truth, pred = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    dice = dice_per_class(truth, pred, 3)  # class 0: 2/3, class 1: 4/5, class 2 in neither
    assert macro_dice(dice) == pytest.approx((2 / 3 + 4 / 5) / 2)  # not lifted by a free 1


def test_foreground_dice_counts_a_class_predicted_but_absent_from_the_truth():
    truth, pred = np.array([0, 0, 1, 1, 0]), np.array([0, 2, 1, 1, 0])
    dice = dice_per_class(
        truth, pred, 4
    )  # class 1: 1, class 2 predicted only: 0, class 3 in neither
    assert foreground_dice(dice) == pytest.approx(0.5)
    assert macro_dice(dice) == pytest.approx((0.8 + 1 + 0) / 3)


def test_summary_counts_the_classes_in_the_truth():
    truth, pred = np.array([0, 0, 1, 1, 0]), np.array([0, 2, 1, 1, 0])
    summary = dice_summary(dice_per_class(truth, pred, 4), np.bincount(truth, minlength=4))
    assert summary == pytest.approx(
        {"foreground_dice": 0.5, "macro_dice": 0.6, "classes_in_truth": 2}
    )


def test_scores_of_nothing_to_score_are_nan():
    assert np.isnan(foreground_dice(np.array([1.0, np.nan, np.nan])))
    assert np.isnan(macro_dice(np.array([np.nan, np.nan])))


def test_volumes_use_the_voxel_size():
    affine = np.diag([1.0, 1.0, 1.5, 1.0])
    assert voxel_volume(affine) == 1.5
    np.testing.assert_allclose(class_volumes(np.array([0, 2, 2]), 3, 1.5), [1.5, 0, 3.0])


def test_confusion_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        confusion_matrix(np.zeros(3), np.zeros(4), 2)
