"""Reading training volumes: T1 and labels checked against each other and the label set."""

import numpy as np
import pytest

from meshseg.image.io import ImageError, save_image
from meshseg.labels import load_labelset
from meshseg.nn.crops import load_volumes
from tests.conftest import sphere_volume

LABELSET = load_labelset("demo_gwm")
AFFINE = np.diag([-1.0, 1.0, 1.0, 1.0])


def test_label_ids_outside_the_chosen_set_fail_naming_the_file_and_ids(tmp_path):
    image, labels = sphere_volume(size=16)
    labels = labels.astype(np.int16)
    labels[0, 0, :3] = 1002
    save_image(image, AFFINE, tmp_path / "t1.nii.gz")
    save_image(labels, AFFINE, tmp_path / "labels.nii.gz")
    with pytest.raises(
        ValueError,
        match=r"labels\.nii\.gz: label ids not in label set "
        r"'demo_gwm' \(id: voxels\) \{1002: 3\}",
    ):
        load_volumes([tmp_path / "t1.nii.gz"], [tmp_path / "labels.nii.gz"], LABELSET)


def test_t1_and_labels_of_different_shape_fail_naming_both_files(tmp_path):
    image, labels = sphere_volume(size=16)
    t1, lab = tmp_path / "sub-1_t1.nii.gz", tmp_path / "sub-1_labels.nii.gz"
    save_image(image, AFFINE, t1)
    save_image(labels[:, :, :15], AFFINE, lab)
    with pytest.raises(ImageError) as info:
        load_volumes([t1], [lab], LABELSET)
    assert str(info.value) == (
        f"{lab}: shape (16, 16, 15) differs from (16, 16, 16) of {t1}; "
        "both must be on the same voxel grid"
    )


def test_t1_and_labels_of_different_affine_fail_naming_both_files(tmp_path):
    image, labels = sphere_volume(size=16)
    t1, lab = tmp_path / "sub-1_t1.nii.gz", tmp_path / "sub-1_labels.nii.gz"
    shifted = AFFINE.copy()
    shifted[:3, 3] = [0.0, 2.0, 0.0]  # same shape, 2 mm apart
    save_image(image, AFFINE, t1)
    save_image(labels, shifted, lab)
    with pytest.raises(
        ImageError, match=rf"^{lab}: affine differs from that of {t1} \(by up to 2\)"
    ):
        load_volumes([t1], [lab], LABELSET)
