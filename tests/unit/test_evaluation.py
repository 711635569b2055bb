import json

import numpy as np
import pandas as pd
import pytest
import torch

from meshseg.image.io import ImageError, save_image
from meshseg.labels import load_labelset
from meshseg.nn.checkpoint import save_checkpoint
from meshseg.nn.models import build_model, model_config
from meshseg.report.evaluation import LabelMaps, evaluate_subject, structure_table, volume_table
from meshseg.report.tables import COMPARISON_COLUMNS, subject_scores, summarise
from tests.conftest import sphere_volume

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])  # 2 mm^3 voxels


def write_pair(tmp_path, pred, truth):
    save_image(np.asarray(pred, np.int16), AFFINE, tmp_path / "pred.nii.gz")
    save_image(np.asarray(truth, np.int16), AFFINE, tmp_path / "truth.nii.gz")
    return tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz"


def test_structure_table_by_hand(tmp_path):
    truth = np.array([0, 0, 1, 1, 1, 2]).reshape(1, 2, 3)
    pred = np.array([0, 1, 1, 1, 0, 2]).reshape(1, 2, 3)
    table = structure_table(*write_pair(tmp_path, pred, truth), load_labelset("demo_gwm"))
    assert table["name"].tolist() == ["Unknown", "gray-matter", "white-matter"]
    np.testing.assert_allclose(table["dice"], [0.5, 2 / 3, 1.0])
    np.testing.assert_allclose(table["predicted_mm3"], [4, 6, 2])
    np.testing.assert_allclose(table["true_mm3"], [4, 6, 2])


def test_a_class_in_neither_truth_nor_prediction_has_no_dice(tmp_path):
    truth = np.array([0, 0, 1, 1]).reshape(1, 2, 2)  # no white matter in either image
    table = structure_table(*write_pair(tmp_path, truth, truth), load_labelset("demo_gwm"))
    np.testing.assert_allclose(table["dice"], [1.0, 1.0, np.nan])


def test_subject_scores_count_false_positive_classes_and_skip_absent_ones():
    # class 2 predicted but not in the truth (Dice 0); class 3 in neither (no Dice)
    structures = pd.DataFrame(
        {
            "subject": "s1",
            "model": "m",
            "class": [0, 1, 2, 3],
            "dice": [0.9, 0.8, 0.0, np.nan],
            "native_dice": [0.9, 0.6, 0.0, np.nan],
            "predicted_mm3": [90.0, 40.0, 5.0, 0.0],
            "true_mm3": [100.0, 50.0, 0.0, 0.0],
        }
    )
    [row] = subject_scores(structures).to_dict("records")
    assert row["foreground_dice"] == pytest.approx(0.4)  # (0.8 + 0) / 2
    assert row["native_foreground_dice"] == pytest.approx(0.3)
    assert row["macro_dice"] == pytest.approx((0.9 + 0.8 + 0.0) / 3)
    assert row["classes_in_truth"] == 2


def test_without_a_labelset_every_id_is_a_class(tmp_path):
    table = structure_table(*write_pair(tmp_path, [[[0, 17, 17]]], [[[0, 17, 1002]]]))
    assert table["id"].tolist() == [0, 17, 1002]
    np.testing.assert_allclose(table["dice"], [1.0, 2 / 3, 0.0])


def test_mismatched_grids_name_the_file(tmp_path):
    save_image(np.zeros((2, 2, 2), np.int16), AFFINE, tmp_path / "pred.nii.gz")
    save_image(np.zeros((2, 2, 3), np.int16), AFFINE, tmp_path / "truth.nii.gz")
    with pytest.raises(ImageError, match=r"pred\.nii\.gz: shape .*truth\.nii\.gz"):
        structure_table(tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz")


def test_summarise_builds_the_three_tables(tmp_path):
    truth = np.array([0, 0, 1, 1, 2, 2]).reshape(1, 2, 3)
    metrics, checkpoints, stats = [], {}, {}
    for model, arch, pred in [("mesh", "meshnet", truth), ("u", "unet", np.zeros_like(truth))]:
        spec = model_config(arch, 3, width=2)
        checkpoints[model] = tmp_path / f"{model}.pt"
        save_checkpoint(
            {
                "model": build_model(spec).state_dict(),
                "model_config": spec,
                "labelset": load_labelset("demo_gwm").to_dict(),
                "step": 1,
            },
            checkpoints[model],
        )
        stats[model] = []
        for subject in ("s1", "s2", "unlabelled"):
            folder = tmp_path / model / subject
            folder.mkdir(parents=True)
            pred_path, truth_path = write_pair(folder, pred, truth)
            if subject == "unlabelled":
                truth_path = None
            evaluate_subject(
                LabelMaps(pred_path, pred_path, truth_path, truth_path),
                "demo_gwm",
                subject,
                model,
                folder / "m.tsv",
            )
            metrics.append(folder / "m.tsv")
            (folder / "inference.json").write_text(
                json.dumps(
                    {
                        "seconds": 2.0,
                        "subvolumes": 10,
                        "subvolumes_per_second": 5.0,
                        "device": "cpu",
                    }
                )
            )
            stats[model].append(folder / "inference.json")
    comparison = summarise(
        metrics,
        checkpoints,
        stats,
        tmp_path / "dice.tsv",
        tmp_path / "volumes.tsv",
        tmp_path / "comparison.tsv",
    )
    assert list(comparison.columns) == COMPARISON_COLUMNS
    rows = comparison.set_index("model")
    assert (
        rows.loc["mesh", "foreground_dice_mean"] == 1.0
        and rows.loc["mesh", "foreground_dice_sd"] == 0
    )
    assert rows.loc["u", "foreground_dice_mean"] == 0.0
    # all-background prediction: Dice 0.5 for background (TP 2, FP 4), 0 for GM and WM
    assert rows.loc["u", "macro_dice_mean"] == pytest.approx(0.5 / 3)
    assert rows.loc["u", "classes_in_truth_mean"] == 3
    assert rows.loc["mesh", "parameters"] == 72_516
    assert rows.loc["u", "checkpoint_bytes"] == checkpoints["u"].stat().st_size
    assert (
        rows.loc["mesh", "subvolumes_per_second"] == 5.0
        and rows.loc["mesh", "seconds_per_subject"] == 2.0
    )
    dice = pd.read_csv(tmp_path / "dice.tsv", sep="\t")
    assert list(dice.columns) == ["subject", "model", "class", "id", "name", "dice", "native_dice"]
    assert len(dice) == 12 and "unlabelled" not in set(dice["subject"])
    assert (dice["dice"] == dice["native_dice"]).all()
    assert (
        rows.loc["mesh", "subjects"] == 2 and rows.loc["mesh", "native_foreground_dice_mean"] == 1.0
    )
    volumes = pd.read_csv(tmp_path / "volumes.tsv", sep="\t")
    assert len(volumes) == 18 and volumes["true_mm3"].sum() == 4 * 12
    assert volumes.loc[volumes["subject"] == "unlabelled", "true_mm3"].isna().all()
    assert torch.load(checkpoints["u"], weights_only=False)["step"] == 1


def test_volume_table_without_truth(tmp_path):
    pred, _ = write_pair(tmp_path, [[[0, 1, 1, 2, 2, 2]]], [[[0, 0, 0, 0, 0, 0]]])
    table = volume_table(pred, load_labelset("demo_gwm"))
    assert list(table.columns) == ["class", "id", "name", "predicted_mm3"]
    np.testing.assert_allclose(table["predicted_mm3"], [2, 4, 6])


def test_predictions_hold_output_ids_and_truth_source_ids(tmp_path):
    # gwm: prediction 702/703 (FSL-FAST ids), truth FreeSurfer ids 3 (cortex) and 2 (WM)
    pred, truth = write_pair(tmp_path, [[[0, 702, 703, 703]]], [[[0, 3, 2, 2]]])
    table = structure_table(pred, truth, load_labelset("gwm"))
    np.testing.assert_allclose(table["dice"], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(volume_table(pred, load_labelset("gwm"))["predicted_mm3"], [2, 2, 4])
    with pytest.raises(ValueError, match=r"truth\.nii\.gz: label ids not in label set"):
        volume_table(truth, load_labelset("gwm"))  # 3 is no output id


def test_float_label_maps_follow_the_one_integer_policy(tmp_path):
    truth = np.array([0, 0, 1, 1, 2, 2], np.float32).reshape(1, 2, 3)
    save_image(truth + 1e-4, AFFINE, tmp_path / "pred.nii.gz")  # whole within 1e-3: rounded
    save_image(truth + 0.4, AFFINE, tmp_path / "truth.nii.gz")
    with pytest.raises(ImageError, match=r"truth\.nii\.gz: label image has non-integral values"):
        structure_table(
            tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz", load_labelset("demo_gwm")
        )
    save_image(truth, AFFINE, tmp_path / "truth.nii.gz")
    table = structure_table(
        tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz", load_labelset("demo_gwm")
    )
    np.testing.assert_allclose(table["dice"], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("change", ["shape", "affine"])
def test_prediction_and_truth_of_different_grids_fail_naming_both_files(tmp_path, change):
    labels = sphere_volume(size=8)[1].astype(np.int16)
    pred, truth = tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz"
    save_image(labels, AFFINE, truth)
    if change == "shape":
        save_image(labels[:7], AFFINE, pred)
    else:
        save_image(labels, AFFINE * [[1], [1], [2], [1]], pred)
    with pytest.raises(ImageError) as info:
        structure_table(pred, truth, load_labelset("demo_gwm"))
    assert str(pred) in str(info.value) and str(truth) in str(info.value)
