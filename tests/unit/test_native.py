import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from meshseg.image.io import ImageError, save_image
from meshseg.image.native import labels_to_native, resample_nearest


def random_labels(shape=(12, 10, 8), seed=0):
    return np.random.default_rng(seed).integers(0, 5, shape).astype(np.int16)


def world_cube(shape=(40, 40, 40), low=(8, 12, 16), high=(24, 30, 28)):
    """Labels on a 1 mm grid at the origin: 7 inside the world box [low, high) mm, else 0."""
    labels = np.zeros(shape, np.int16)
    labels[tuple(slice(a, b) for a, b in zip(low, high))] = 7
    return labels, np.eye(4), np.array(low), np.array(high)


def test_identity_is_a_copy():
    labels = random_labels()
    affine = np.diag([-1.0, 2.0, 1.5, 1.0])
    np.testing.assert_array_equal(resample_nearest(labels, affine, labels.shape, affine), labels)


def test_permuted_and_flipped_axes():
    labels = random_labels()
    n = labels.shape[0]
    # target index (i, j, k) is source index (n - 1 - k, i, j)
    swap = np.array([[0, 0, -1, n - 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1.0]])
    affine = np.diag([1.0, 1.2, 0.8, 1.0])
    target_shape = (labels.shape[1], labels.shape[2], n)
    out = resample_nearest(labels, affine, target_shape, affine @ swap)
    np.testing.assert_array_equal(out, np.flip(labels, 0).transpose(1, 2, 0))


def test_translated_grid_fills_the_outside_with_zero():
    labels = random_labels() + 1  # no zero inside the source
    shift = np.eye(4)
    shift[0, 3] = 3.0  # target voxel i lies on source voxel i + 3
    out = resample_nearest(labels, np.eye(4), labels.shape, shift)
    np.testing.assert_array_equal(out[:-3], labels[3:])
    assert not out[-3:].any()


def test_anisotropic_target_samples_every_other_voxel():
    labels = random_labels((20, 20, 21))
    out = resample_nearest(labels, np.eye(4), (10, 10, 7), np.diag([2.0, 2.0, 3.0, 1.0]))
    np.testing.assert_array_equal(out, labels[::2, ::2, ::3])


def test_oblique_target_puts_the_cube_at_its_world_position():
    labels, affine, low, high = world_cube()
    target = np.eye(4)
    target[:3, :3] = Rotation.from_euler("xyz", [12, -20, 7], degrees=True).as_matrix() * [
        0.9,
        1.1,
        1.4,
    ]
    target[:3, 3] = [-5.0, 3.0, 1.0]
    shape = (45, 40, 30)
    out = resample_nearest(labels, affine, shape, target)
    world = np.indices(shape).reshape(3, -1).T @ target[:3, :3].T + target[:3, 3]
    # voxel centres at least 1 mm inside the box (world mm == source index here), or 1 mm out
    inside = np.all((world > low - 0.5 + 1) & (world < high - 0.5 - 1), axis=1)
    outside = np.any((world < low - 0.5 - 1) | (world > high - 0.5 + 1), axis=1)
    flat = out.ravel()
    assert inside.sum() > 500 and np.all(flat[inside] == 7) and np.all(flat[outside] == 0)


def test_file_keeps_the_reference_header(tmp_path):
    labels, affine, *_ = world_cube()
    labels[labels == 7] = 1035  # an id beyond uint8
    save_image(labels, affine, tmp_path / "labels.nii.gz")
    t1 = nib.Nifti1Image(np.ones((30, 30, 20, 1), np.int16), None)
    oblique = np.eye(4)
    oblique[:3, :3] = Rotation.from_euler("z", 10, degrees=True).as_matrix() * [1.0, 1.0, 1.5]
    t1.header.set_qform(oblique, code=1)
    t1.header.set_sform(oblique, code=2)
    t1.header.set_xyzt_units("mm", "sec")
    t1.header.set_slope_inter(2.0, 10.0)
    nib.save(t1, tmp_path / "t1.nii.gz")

    labels_to_native(tmp_path / "labels.nii.gz", tmp_path / "t1.nii.gz", tmp_path / "native.nii.gz")
    ref, out = nib.load(tmp_path / "t1.nii.gz"), nib.load(tmp_path / "native.nii.gz")
    assert out.shape == (30, 30, 20) and out.get_data_dtype() == np.int16
    assert out.header.get_slope_inter() in [(None, None), (1.0, 0.0)]  # stored unscaled
    assert_same_grid(out.header, ref.header)
    assert set(np.unique(np.asarray(out.dataobj))) == {0, 1035}


def assert_same_grid(header, reference):
    """Same affine, qform/sform and codes, zooms and units (shape without a singleton 4th)."""
    assert header.get_data_shape() == reference.get_data_shape()[:3]
    np.testing.assert_allclose(header.get_best_affine(), reference.get_best_affine(), atol=1e-6)
    for form in ("qform", "sform"):
        matrix, code = getattr(header, f"get_{form}")(coded=True)
        ref_matrix, ref_code = getattr(reference, f"get_{form}")(coded=True)
        assert code == ref_code
        np.testing.assert_allclose(matrix, ref_matrix, atol=1e-6)
    np.testing.assert_allclose(header.get_zooms()[:3], reference.get_zooms()[:3])
    assert header.get_xyzt_units() == reference.get_xyzt_units()


def test_unreadable_reference_names_the_file(tmp_path):
    save_image(np.zeros((4, 4, 4), np.uint8), np.eye(4), tmp_path / "labels.nii.gz")
    (tmp_path / "t1.nii.gz").write_text("not an image")
    with pytest.raises(ImageError, match=r"t1\.nii\.gz: not a readable NIfTI"):
        labels_to_native(
            tmp_path / "labels.nii.gz", tmp_path / "t1.nii.gz", tmp_path / "out.nii.gz"
        )
    assert not (tmp_path / "out.nii.gz").exists()


def test_demo_round_trip_through_the_prepared_grid(tmp_path):
    from meshseg.data.demo import make_demo_subject
    from meshseg.image.conform import conform_file
    from meshseg.image.preprocess import prepare_file
    from meshseg.metrics import dice_per_class

    make_demo_subject(0, 0, tmp_path / "t1.nii.gz", tmp_path / "labels.nii.gz")
    conform_file(
        tmp_path / "labels.nii.gz", tmp_path / "conformed.nii.gz", labels=True, backend="python"
    )
    prepare_file(tmp_path / "conformed.nii.gz", tmp_path / "prepared.nii.gz", labels=True)
    labels_to_native(
        tmp_path / "prepared.nii.gz", tmp_path / "t1.nii.gz", tmp_path / "native.nii.gz"
    )

    truth, out = nib.load(tmp_path / "labels.nii.gz"), nib.load(tmp_path / "native.nii.gz")
    assert_same_grid(out.header, nib.load(tmp_path / "t1.nii.gz").header)
    assert out.get_data_dtype() == np.uint8
    dice = dice_per_class(np.asarray(truth.dataobj), np.asarray(out.dataobj), 3)
    assert dice.min() >= 0.95, dice
