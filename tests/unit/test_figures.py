import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from meshseg.image.io import ImageError, save_image
from meshseg.report import figures

RUN = {
    "models": {
        "meshnet": {"arch": "meshnet", "variant": "small", "steps": 250, "inference": "whole"},
        "unet": {"arch": "unet", "width": 16, "steps": 120, "inference": "vote"},
    },
    "dataset": "demo",
    "labelset": "demo_gwm",
    "test_subjects": 2,
    "n_subvolumes": 512,
    "vote": "hard",
}
NAMES = ["Unknown", "gray-matter", "white-matter"]
TRUE_MM3 = [16e6, 6e5, 4.5e5]


@pytest.fixture
def structures():
    """Long per-class table of 3 subjects x 2 models x 3 classes (Dice and volumes)."""
    rng = np.random.default_rng(0)
    rows = [
        {
            "subject": s,
            "model": m,
            "class": c,
            "id": c,
            "name": NAMES[c],
            "dice": rng.uniform(0.6, 0.95),
            "predicted_mm3": TRUE_MM3[c] * rng.uniform(0.8, 1.2),
            "true_mm3": TRUE_MM3[c],
        }
        for s in ("s1", "s2", "s3")
        for m in ("meshnet", "unet")
        for c in range(3)
    ]
    return pd.DataFrame(rows)


def experiment_table():
    rows = [
        {
            "model": m,
            "subject": s,
            "inference": "vote",
            "n_subvolumes": n,
            "foreground_dice": 0.7 + n / 1e5,
            "macro_dice": 0.8,
        }
        for m in ("meshnet", "unet")
        for s in ("s1", "s2")
        for n in (343, 512, 1024)
    ]
    rows += [
        {
            "model": "meshnet",
            "subject": s,
            "inference": "whole",
            "n_subvolumes": 0,
            "foreground_dice": 0.75,
            "macro_dice": 0.82,
        }
        for s in ("s1", "s2")
    ]
    return pd.DataFrame(rows)


def curve():
    return pd.DataFrame(
        {"step": [2, 4, 6], "loss": [1.1, 0.8, 0.6], "lr": [0.01] * 3, "val_dice": [0.3, 0.5, 0.6]}
    )


def assert_png(path, min_width=800):
    """A readable PNG of sensible size at 150 dpi (not a thumbnail, not a poster)."""
    height, width = imread(path).shape[:2]
    assert min_width <= width <= 6000 and 400 <= height <= 4000, (width, height)


def test_run_caption_names_models_steps_and_inference():
    caption = figures.run_caption(RUN)
    for text in (
        "meshnet (MeshNet small, 250 training steps; whole-volume inference)",
        "unet (U-Net width 16, 120 training steps; 512 subvolumes, hard vote)",
        "label set demo_gwm",
        "2 test subjects",
    ):
        assert text in caption


def test_run_caption_of_pretrained_models():
    run = {**RUN, "models": {"mine": {"pretrained": "weights/mine.pt", "inference": "vote"}}}
    assert "mine (pretrained weights/mine.pt; 512 subvolumes" in figures.run_caption(run)
    run["models"]["mine"]["inference"] = "auto"  # what the workflow gives pretrained models
    caption = figures.run_caption(run)
    assert "mine (pretrained weights/mine.pt; its checkpoint's inference mode)" in caption


def test_dice_boxplot(tmp_path, structures):
    figures.dice_boxplot(structures, tmp_path / "dice.png", "caption")
    assert_png(tmp_path / "dice.png")


def test_dice_boxplot_reads_a_tsv(tmp_path, structures):
    structures.to_csv(tmp_path / "dice.tsv", sep="\t", index=False)
    figures.dice_boxplot(tmp_path / "dice.tsv", tmp_path / "dice.png", "caption")
    assert_png(tmp_path / "dice.png")


def test_volume_agreement(tmp_path, structures):
    figures.volume_agreement(structures, tmp_path / "volumes.png", "caption")
    assert_png(tmp_path / "volumes.png")


def test_volume_agreement_needs_a_labelled_structure(tmp_path, structures):
    structures["true_mm3"] = np.nan  # a subject without labels: volumes only
    with pytest.raises(ValueError, match="no foreground structure"):
        figures.volume_agreement(structures, tmp_path / "volumes.png", "caption")


def test_training_curves(tmp_path):
    figures.training_curves(
        {"meshnet": curve(), "unet": curve()}, tmp_path / "curves.png", "caption"
    )
    assert_png(tmp_path / "curves.png")


def test_dice_vs_subvolumes(tmp_path):
    figures.dice_vs_subvolumes_plot([experiment_table()], tmp_path / "n.png", "caption")
    assert_png(tmp_path / "n.png")


def test_dice_vs_subvolumes_rejects_unknown_inference(tmp_path):
    table = experiment_table().replace({"inference": {"whole": "sliding"}})
    with pytest.raises(ValueError, match=r"'vote' or 'whole', got \['sliding'\]"):
        figures.dice_vs_subvolumes_plot([table], tmp_path / "n.png", "caption")
    with pytest.raises(ValueError, match="no experiment tables"):
        figures.dice_vs_subvolumes_plot([], tmp_path / "n.png", "caption")


def test_overlay(tmp_path, prepared_pair):
    t1, labels, _, truth = prepared_pair
    wrong = truth.copy()
    wrong[24:][wrong[24:] == 2] = 1
    save_image(wrong, np.diag([-1.0, 1.0, 1.0, 1.0]), tmp_path / "pred.nii.gz")
    figures.overlay(
        figures.OverlayImages(
            "s1", t1, labels, {"meshnet": tmp_path / "pred.nii.gz", "unet": labels}
        ),
        "demo_gwm",
        tmp_path / "overlay.png",
        "caption",
    )
    height, width = imread(tmp_path / "overlay.png").shape[:2]
    assert 1200 <= width <= 2500 and height > width  # three rows of three slices


def test_overlay_rejects_a_prediction_on_another_grid(tmp_path, prepared_pair):
    t1, labels, _, truth = prepared_pair
    save_image(truth[:40], np.eye(4), tmp_path / "pred.nii.gz")
    with pytest.raises(
        ImageError, match=r"pred.nii.gz: shape \(40, 48, 48\) does not match the T1"
    ):
        figures.overlay(
            figures.OverlayImages("s1", t1, labels, {"meshnet": tmp_path / "pred.nii.gz"}),
            "demo_gwm",
            tmp_path / "overlay.png",
            "caption",
        )
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    "plot, columns",
    [
        (figures.dice_boxplot, ["subject", "model", "class", "dice"]),
        (figures.volume_agreement, ["subject", "model", "class", "name", "true_mm3"]),
    ],
)
def test_missing_columns_and_empty_tables_are_named(tmp_path, plot, columns):
    with pytest.raises(ValueError, match=r"missing columns \[.*'name'"):
        plot(pd.DataFrame({c: [1] for c in columns if c != "name"}), tmp_path / "f.png", "caption")
    with pytest.raises(ValueError, match="no rows"):
        plot(
            pd.DataFrame(columns=[*columns, "name", "predicted_mm3"]), tmp_path / "f.png", "caption"
        )
    assert not (tmp_path / "f.png").exists()


def test_training_curves_name_the_model_with_a_bad_table(tmp_path):
    with pytest.raises(ValueError, match=r"training curve of unet: missing columns \['val_dice'\]"):
        figures.training_curves(
            {"meshnet": curve(), "unet": curve().drop(columns="val_dice")},
            tmp_path / "curves.png",
            "caption",
        )
