import gzip

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from meshseg.image.io import ImageError, atomic_path, load_image, save_image, write_table


def test_save_and_load_keep_data_and_affine(tmp_path):
    affine = np.array([[0, 0, 1.2, -3], [-1, 0, 0, 4], [0, 1, 0, 5], [0, 0, 0, 1]])
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    save_image(data, affine, tmp_path / "a.nii.gz")
    img = load_image(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, affine)
    assert [p.name for p in tmp_path.iterdir()] == ["a.nii.gz"]


def bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.nii.gz"
    if kind == "truncated":
        noise = np.random.default_rng(0).random((20, 20, 20), dtype=np.float32)
        save_image(noise, np.eye(4), path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == "text":
        path.write_bytes(gzip.compress(b"this is not an image"))
    elif kind == "4d":
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), path)
    elif kind == "2d":
        nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), path)
    elif kind == "nan":
        data = np.zeros((4, 4, 4), np.float32)
        data[0, 0, 0] = np.nan
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


@pytest.mark.parametrize(
    "kind,problem",
    [
        ("truncated", "not a readable"),
        ("text", "not a readable"),
        ("4d", "expected a 3-D image"),
        ("2d", "expected a 3-D image"),
        ("nan", "1 voxels are NaN or Inf"),
        ("missing", "file not found"),
    ],
)
def test_bad_images_name_the_file_and_problem(tmp_path, kind, problem):
    path = bad_file(tmp_path, kind)
    with pytest.raises(ImageError, match=f"{kind}.nii.gz: {problem}") as err:
        load_image(path)
    assert "\n" not in str(err.value)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.nii.gz") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_label_maps_keep_whole_floats_and_refuse_others_naming_the_file(tmp_path):
    save_image(np.full((2, 2, 2), 41.0004, np.float32), np.eye(4), tmp_path / "whole.nii.gz")
    save_image(np.full((2, 2, 2), 2.3, np.float32), np.eye(4), tmp_path / "half.nii.gz")
    ids = np.asarray(load_image(tmp_path / "whole.nii.gz", labels=True).dataobj)
    assert ids.dtype == np.int16 and (ids == 41).all()
    with pytest.raises(ImageError, match=r"half\.nii\.gz: label image has non-integral values"):
        load_image(tmp_path / "half.nii.gz", labels=True)


def test_write_table_rounds_floats_to_its_format(tmp_path):
    table = pd.DataFrame({"name": ["a"], "x": [0.123456789]})
    write_table(table, tmp_path / "six.tsv")
    write_table(table, tmp_path / "exact.tsv", float_format=None)
    assert (tmp_path / "six.tsv").read_text() == "name\tx\na\t0.123457\n"
    assert (tmp_path / "exact.tsv").read_text() == "name\tx\na\t0.123456789\n"
