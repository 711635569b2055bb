import nibabel as nib
import numpy as np
import pytest

from meshseg.image.conform import conform_file
from meshseg.image.io import ImageError, save_image
from meshseg.image.preprocess import prepare_file
from tests.conftest import fails_cleanly


def test_t1_is_padded_and_normalised(tmp_path):
    data = np.zeros((4, 6, 8), np.uint8)
    data[1:3, 2:4, 3:5] = 200
    data[0, 0, 0] = 10
    save_image(data, np.eye(4), tmp_path / "t1.nii.gz")
    prepare_file(tmp_path / "t1.nii.gz", tmp_path / "out" / "t1.nii.gz", size=10)
    img = nib.load(tmp_path / "out" / "t1.nii.gz")
    out = np.asarray(img.dataobj)
    assert out.shape == (10, 10, 10) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0 and out[3, 2, 1] == pytest.approx(10 / 200)
    np.testing.assert_allclose(img.affine @ [3, 2, 1, 1], [0, 0, 0, 1])


def test_labels_are_padded_not_scaled_and_float_labels_rounded(tmp_path):
    labels = np.zeros((4, 4, 4), np.float32)
    labels[1, 1, 1] = 1002.0000001
    save_image(labels, np.eye(4), tmp_path / "labels.nii.gz")
    prepare_file(tmp_path / "labels.nii.gz", tmp_path / "out.nii.gz", size=6, labels=True)
    out = np.asarray(nib.load(tmp_path / "out.nii.gz").dataobj)
    assert out.dtype.kind == "i" and set(np.unique(out)) == {0, 1002} and out[2, 2, 2] == 1002


def test_errors_name_the_file_and_leave_no_output(tmp_path):
    save_image(np.full((4, 4, 4), 7, np.uint8), np.eye(4), tmp_path / "flat.nii.gz")
    with pytest.raises(ImageError, match=r"flat\.nii\.gz: constant image"):
        prepare_file(tmp_path / "flat.nii.gz", tmp_path / "o.nii.gz")
    save_image(np.full((4, 4, 4), 1.5, np.float32), np.eye(4), tmp_path / "half.nii.gz")
    with pytest.raises(ImageError, match=r"half\.nii\.gz: label image has non-integral values"):
        prepare_file(tmp_path / "half.nii.gz", tmp_path / "o.nii.gz", labels=True)
    assert not (tmp_path / "o.nii.gz").exists()


@pytest.mark.parametrize("step", ["conform", "prepare"])
def test_constant_image_fails_naming_the_file(tmp_path, step):
    # a float T1 fails at conform (uchar scaling); a uint8 one passes conform unchanged and
    # fails at prepare (min-max normalisation)
    dtype = np.float32 if step == "conform" else np.uint8
    path = tmp_path / "blank.nii.gz"
    save_image(np.full((8, 8, 8), 7, dtype), np.eye(4), path)
    out = tmp_path / "out"
    run = conform_file if step == "conform" else prepare_file
    kwargs = {"backend": "python"} if step == "conform" else {"size": 16}
    fails_cleanly(lambda: run(path, out / "t1.nii.gz", **kwargs), path, "constant image", out)


@pytest.mark.parametrize("step", ["conform", "prepare"])
def test_labels_that_are_not_integers_fail_naming_the_file(tmp_path, step):
    labels = np.zeros((8, 8, 8), np.float32)
    labels[2:5, 2:5, 2:5] = 1.5
    path = tmp_path / "labels.nii.gz"
    save_image(labels, np.eye(4), path)
    out = tmp_path / "out"
    run = conform_file if step == "conform" else prepare_file
    kwargs = {"backend": "python"} if step == "conform" else {"size": 16}
    fails_cleanly(
        lambda: run(path, out / "labels.nii.gz", labels=True, **kwargs),
        path,
        "label image has non-integral values (0.5 from a whole number)",
        out,
    )
