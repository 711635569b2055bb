"""Segment nilearn's ICBM152 template (197x233x189, RAS, 1 mm) and score it in both spaces.

Usage::

    .venv/bin/python benchmarks/icbm_native_check.py \\
        --checkpoint results/models/meshnet/checkpoint.pt

The template T1 goes through ``meshseg segment``'s function (conform, prepare, inference,
labels back on the template's grid). Its gray/white-matter truth (the demo's labels: the
template's tissue maps, thresholded) is scored against the labels on the conformed grid
(truth conformed and padded the workflow's way) and against the labels on the template's own
grid. The two foreground Dice should agree within 0.005: an odd-sized axis-aligned grid is
where a one-voxel shift between the spaces shows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from meshseg.data.demo import template
from meshseg.image.conform import conform_file
from meshseg.image.io import load_volume, save_image
from meshseg.image.preprocess import prepare_file
from meshseg.metrics import dice_per_class
from meshseg.nn import checkpoint
from meshseg.nn.inference import InferenceConfig
from meshseg.nn.runtime import Compute
from meshseg.pipeline import segment_t1


def foreground_dice(prediction_path: Path, truth_path: Path) -> np.ndarray:
    """Dice of gray and white matter (ids 1, 2) between two label files on one grid."""
    prediction, _ = load_volume(prediction_path)
    truth, _ = load_volume(truth_path)
    return dice_per_class(truth.astype(np.int64), prediction.astype(np.int64), 3)[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a gwm model (demo or Mindboggle gwm)")
    parser.add_argument("--subvolumes", type=int, default=512)
    args = parser.parse_args()
    from nilearn import datasets

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        nib.save(datasets.load_mni152_template(resolution=1), work / "icbm152.nii.gz")
        _, labels, affine, _ = template()
        save_image(labels, affine, work / "truth.nii.gz")
        conform_file(
            work / "truth.nii.gz", work / "truth_conformed.nii.gz", labels=True, backend="python"
        )
        prepare_file(work / "truth_conformed.nii.gz", work / "truth_prepared.nii.gz", labels=True)
        config = InferenceConfig(n_subvolumes=args.subvolumes, threads=2)
        result = segment_t1(
            work / "icbm152.nii.gz",
            checkpoint.load(args.checkpoint),
            work / "out",
            config,
            Compute.from_config(config),
            backend="python",
        )
        files = {key: Path(path) for key, path in result["files"].items()}
        conformed = foreground_dice(files["labels_conformed"], work / "truth_prepared.nii.gz")
        native = foreground_dice(files["labels_native"], work / "truth.nii.gz")
    print(f"grid {labels.shape}, affine diagonal {np.diag(affine)[:3]}, offset {affine[:3, 3]}")
    print("space      GM Dice  WM Dice  foreground")
    for name, dice in (("conformed", conformed), ("native", native)):
        print(f"{name:<10} {dice[0]:.4f}   {dice[1]:.4f}   {dice.mean():.4f}")
    print(f"native - conformed foreground Dice: {native.mean() - conformed.mean():+.4f}")


if __name__ == "__main__":
    main()
