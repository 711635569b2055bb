"""Tests for meshseg.data.demo: the synthetic ICBM152-derived demo cohort."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
import pytest

from meshseg.data.demo import make_demo_subject

SEED = 20240607
# The template itself gives GM 1080 cm^3 and WM 632 cm^3 with the labelling rule; a smooth
# zero-mean deformation changes them by well under 1 %, so these bounds are about +-7 %.
GM_CM3 = (1000.0, 1160.0)
WM_CM3 = (585.0, 680.0)


class Subject(NamedTuple):
    """One generated subject: voxel arrays and the images they came from."""

    t1: np.ndarray
    labels: np.ndarray
    t1_img: nib.Nifti1Image
    labels_img: nib.Nifti1Image


def _make(folder: Path, index: int, seed: int = SEED) -> Subject:
    t1_path, labels_path = folder / f"t1_{index}.nii.gz", folder / f"labels_{index}.nii.gz"
    make_demo_subject(index, seed, t1_path, labels_path)
    t1_img, labels_img = nib.load(t1_path), nib.load(labels_path)
    return Subject(
        np.asanyarray(t1_img.dataobj), np.asanyarray(labels_img.dataobj), t1_img, labels_img
    )


def _world_centre(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Centre of mass of ``mask`` in world (mm) coordinates."""
    return nib.affines.apply_affine(affine, np.argwhere(mask).mean(axis=0))


@pytest.fixture(scope="module")
def subject0(tmp_path_factory: pytest.TempPathFactory) -> Subject:
    return _make(tmp_path_factory.mktemp("first"), 0)


def test_same_seed_and_index_give_identical_subjects(subject0, tmp_path):
    again = _make(tmp_path, 0)
    np.testing.assert_array_equal(again.t1, subject0.t1)
    np.testing.assert_array_equal(again.labels, subject0.labels)
    np.testing.assert_array_equal(again.t1_img.affine, subject0.t1_img.affine)


def test_other_index_gives_other_subject(subject0, tmp_path):
    other = _make(tmp_path, 1)
    assert not np.allclose(other.t1_img.affine, subject0.t1_img.affine)
    assert other.t1.shape != subject0.t1.shape or not np.array_equal(other.t1, subject0.t1)


@pytest.mark.parametrize(("index", "seed"), [(-1, SEED), (0, -1)])
def test_negative_index_or_seed_is_rejected(index, seed, tmp_path):
    with pytest.raises(ValueError, match="must be >= 0"):
        make_demo_subject(index, seed, tmp_path / "t1.nii.gz", tmp_path / "labels.nii.gz")


def test_header_is_an_oblique_anisotropic_scanner_grid(subject0):
    t1_img, labels_img = subject0.t1_img, subject0.labels_img
    assert t1_img.get_data_dtype() == np.int16
    assert labels_img.get_data_dtype() == np.uint8
    for img in (t1_img, labels_img):
        np.testing.assert_allclose(img.get_qform(), t1_img.affine, atol=1e-4)
        np.testing.assert_allclose(img.get_sform(), t1_img.affine, atol=1e-4)
    zooms = np.array(t1_img.header.get_zooms())
    cosines = t1_img.affine[:3, :3] / zooms
    assert np.all(np.abs(cosines).max(axis=0) < 0.9999), cosines  # every axis is tilted
    assert np.ptp(zooms) >= 0.1 - 1e-4, zooms
    assert np.all(np.array(t1_img.shape) * zooms <= 260.0), (t1_img.shape, zooms)


def test_labels_are_gray_and_white_matter_of_plausible_volume(subject0):
    labels = subject0.labels
    assert set(np.unique(labels)) == {0, 1, 2}
    voxel_cm3 = np.prod(subject0.labels_img.header.get_zooms()) / 1000.0
    gm_cm3, wm_cm3 = (labels == 1).sum() * voxel_cm3, (labels == 2).sum() * voxel_cm3
    assert GM_CM3[0] < gm_cm3 < GM_CM3[1], gm_cm3
    assert WM_CM3[0] < wm_cm3 < WM_CM3[1], wm_cm3


def test_t1_has_t1_contrast(subject0):
    t1, labels = subject0.t1.astype(float), subject0.labels
    background, gray, white = (t1[labels == k].mean() for k in (0, 1, 2))
    csf_and_rest = t1[(labels == 0) & (t1 > 0)].mean()
    assert white > gray > csf_and_rest > background, (white, gray, csf_and_rest, background)
    assert t1.min() == 0 and 1000 * 0.8 < t1.max() < 3000 * 1.3, (t1.min(), t1.max())


def test_labels_and_t1_agree_in_world_space(subject0):
    outside = (subject0.labels > 0) & (subject0.t1 == 0)
    assert not outside.any(), f"{int(outside.sum())} labelled voxels lie outside the T1's brain"
    affine = subject0.t1_img.affine
    labels_centre = _world_centre(subject0.labels > 0, affine)
    t1_centre = _world_centre(subject0.t1 > 0, affine)
    assert np.linalg.norm(labels_centre - t1_centre) < 2.0, (labels_centre, t1_centre)


def test_header_places_the_brain_where_the_template_has_it(subject0):
    from nilearn.datasets import load_mni152_template

    template = load_mni152_template(resolution=1)
    template_centre = _world_centre(template.get_fdata() > 0, template.affine)
    t1_centre = _world_centre(subject0.t1 > 0, subject0.t1_img.affine)
    # A wrong vox2ras (transposed rotation, flipped axis, centre shift) moves this by > 10 mm.
    assert np.linalg.norm(t1_centre - template_centre) < 3.0, (t1_centre, template_centre)
