"""meshseg.image.conform against the mri_convert -c rules (docs/references.md: Conform), on
synthetic images."""

import gzip
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from meshseg.image.conform import (
    conform,
    conform_file,
    conformed_affine,
    conformed_size,
    is_conformed,
    uchar_scale,
)
from meshseg.image.io import ImageError, save_image
from tests.conftest import everything_in, fails_cleanly, small_t1
from tests.kill import CHILD_HALF_WRITE, CHILD_PAUSE, start_and_kill

LIA = np.array([[-1.0, 0, 0], [0, 0, 1], [0, -1, 0]])

# Oblique (rotated about x with cos 0.8, sin 0.6) and anisotropic (2, 1, 3 mm) input grid.
OBLIQUE = np.array(
    [[2.0, 0.0, 0.0, 5.0], [0.0, 0.8, -1.8, -7.0], [0.0, 0.6, 2.4, 11.0], [0, 0, 0, 1]]
)
OBLIQUE_SHAPE = (40, 50, 30)
# input voxel (8, 40, 5) is world (2*8+5, 0.8*40-1.8*5-7, 0.6*40+2.4*5+11) = (21, 16, 47)
SPOT_VOXEL, SPOT_WORLD = (8, 40, 5), np.array([21.0, 16.0, 47.0])


def lia_image(shape, dtype=np.uint8, zoom=1.0, cosines=LIA):
    """A header-only stand-in: is_conformed must not need more than this."""
    affine = np.eye(4)
    affine[:3, :3] = cosines * zoom
    return SimpleNamespace(shape=shape, affine=affine, get_data_dtype=lambda: np.dtype(dtype))


def output_voxel(img, world):
    """Index of the output voxel whose centre is the world point."""
    index = np.linalg.inv(img.affine) @ np.append(world, 1.0)
    np.testing.assert_allclose(index[:3], np.round(index[:3]), atol=1e-6)
    return tuple(int(i) for i in np.round(index[:3]))


@pytest.fixture(scope="module")
def oblique_pair():
    """T1 (noisy background, bright 3^3 spot) and labels (3^3 cube of 2035 in 7) conformed."""
    rng = np.random.default_rng(0)
    cube = tuple(slice(c - 1, c + 2) for c in SPOT_VOXEL)
    t1 = rng.uniform(50, 150, OBLIQUE_SHAPE).astype(np.float32)
    t1[cube] = 400
    labels = np.full(OBLIQUE_SHAPE, 7, np.int32)
    labels[cube] = 2035
    return conform(nib.Nifti1Image(t1, OBLIQUE)), conform(
        nib.Nifti1Image(labels, OBLIQUE), labels=True
    )


def test_affine_of_a_ras_image_keeps_its_centre():
    affine = np.eye(4)
    affine[:3, 3] = [10 - 32, -20 - 32, 30 - 32]  # c_ras = affine @ [32, 32, 32] = (10, -20, 30)
    expected = [[-1, 0, 0, 138], [0, 0, 1, -148], [0, -1, 0, 158], [0, 0, 0, 1]]
    np.testing.assert_allclose(conformed_affine(affine, (64, 64, 64), 256), expected)


def test_affine_of_an_oblique_anisotropic_image_uses_n_over_2():
    # c_ras = OBLIQUE @ [20, 25, 15] = (45, 20 - 27 - 7, 15 + 36 + 11) = (45, -14, 62)
    expected = [[-1, 0, 0, 173], [0, 0, 1, -142], [0, -1, 0, 190], [0, 0, 0, 1]]
    np.testing.assert_allclose(conformed_affine(OBLIQUE, OBLIQUE_SHAPE, 256), expected)


@pytest.mark.parametrize(
    ("shape", "zooms", "size"),
    [
        ((200, 200, 200), (1, 1, 1), 256),
        ((281, 100, 100), (1, 1, 1), 256),  # (281 - 256) / 256 = 0.098
        ((256, 200, 200), (1.1, 1, 1), 282),  # FOV 281.6 -> w 282: (282 - 256) / 256 = 0.102
        ((290, 290, 290), (1, 1, 1), 290),
        ((176, 240, 256), (1.2, 1, 1), 256),  # anisotropic, largest FOV 256
        ((160, 240, 240), (1.2, 1.2, 1.2), 288),
        # zooms as a NIfTI header stores them: the float32 product is 286.0, in float64 286.00001
        ((260, 260, 260), (np.float32(1.1),) * 3, 286),
    ],
)
def test_conformed_size_rule(shape, zooms, size):
    assert conformed_size(shape, zooms) == size


def test_histogram_cut_on_values_one_to_ten_thousand():
    # min 1, bin size 9.999; n = int(0.000999987 * 10000) = 9; the top bin (9991..10000) holds
    # 10 voxels, so src_max is edge 998: 1 + 998 * 9.999 = 9980.002 (FastSurfer: 997, spec: 999)
    values = np.arange(1, 10001, dtype=np.float32).reshape(10, 10, 100)
    out = uchar_scale(values).ravel()
    first_saturated = int(np.flatnonzero(out == 255)[0]) + 1  # 255 (v - 1) / 9979.002 >= 254.5
    assert first_saturated == 9961
    assert out[5000 - 1] == 128  # 255 * 4999 / 9979.002 = 127.7


def test_brightest_outliers_are_clipped_to_255():
    # 3000 voxels, 2500 non-zero: n = 2; bin size 1; 1000 and 995 are the 2 brightest, so the
    # count completes at bin 995 and src_max is edge 994 (not 501/499: the empty bins between
    # 501 and 994 are not crossed)
    values = np.concatenate([np.zeros(500), np.full(2490, 10), np.full(8, 500), [995, 1000]])
    out = uchar_scale(values.astype(np.float32).reshape(30, 10, 10)).ravel()
    found = dict(zip(values.tolist(), out.tolist()))
    assert found == {0: 0, 10: 3, 500: 128, 995: 255, 1000: 255}  # 255 * 500 / 994 = 128.3
    assert out.dtype == np.uint8


def test_cut_count_uses_f_high_as_a_c_float():
    # 2000 non-zero voxels: n = int((1 - 0.999f) * 2000) = int(1.99997) = 1, not 2, so the cut
    # completes at the top bin (1000) and src_max is edge 998: 995 is not saturated
    values = np.concatenate([np.zeros(500), np.full(1990, 10), np.full(8, 500), [995, 1000]])
    out = uchar_scale(values.astype(np.float32).reshape(25, 10, 10)).ravel()
    assert out[-2] == 254 and out[-1] == 255  # 255 * 995 / 998 = 254.2


def test_zero_stays_zero_when_the_minimum_is_negative():
    values = np.tile(np.array([-100, 0, 50, 100], dtype=np.int16), (4, 4, 1))
    out = uchar_scale(values)
    assert (out[values == 0] == 0).all()
    assert (out[values == -100] == 0).all() and (out[values == 50] > 0).all()


def test_uchar_is_unchanged_but_other_types_in_range_are_rescaled():
    values = np.arange(101, dtype=np.int16).reshape(1, 1, 101)
    np.testing.assert_array_equal(uchar_scale(values.astype(np.uint8)), values)
    assert uchar_scale(values).max() == 255


def test_constant_image_cannot_be_scaled():
    with pytest.raises(ValueError, match="constant image"):
        uchar_scale(np.full((3, 3, 3), 7.0))


def test_label_lands_where_the_geometry_says(oblique_pair):
    _, labels = oblique_pair
    target = output_voxel(labels, SPOT_WORLD)
    assert target == (173 - 21, 190 - 47, 16 + 142)  # inverse of the expected LIA affine
    assert labels.get_fdata()[target] == 2035


def test_bright_spot_lands_where_the_geometry_says(oblique_pair):
    t1, _ = oblique_pair
    data = np.asanyarray(t1.dataobj)
    assert data.dtype == np.uint8
    assert data[output_voxel(t1, SPOT_WORLD)] == 255
    assert data[output_voxel(t1, OBLIQUE[:3] @ [20, 25, 15, 1])] < 255  # c_ras, background


def test_outside_is_zero_edges_blend_with_zero_and_halves_round_up():
    # 15^3 uint8, 1 mm RAS, c_ras 0: output voxel (i, 128, 128) samples input x = 135.5 - i,
    # between rows of 100 (even x) and 101 (odd x)
    data = np.broadcast_to((100 + np.arange(15) % 2).reshape(15, 1, 1), (15, 15, 15))
    affine = np.eye(4)
    affine[:3, 3] = -7.5
    out = np.asanyarray(conform(nib.Nifti1Image(data.astype(np.uint8), affine)).dataobj)
    row = out[:, 128, 128]
    assert row[135] == 101  # x = 0.5: 100.5, rounded half up like FreeSurfer's nint
    assert row[136] == 50 and row[121] == 50  # x = -0.5 and 14.5: half the edge value
    assert row[122] == 101  # x = 13.5, between 101 and 100
    assert row[:121].sum() == 0 and row[137:].sum() == 0  # x >= 15.5 or x <= -1.5: outside


def test_nearest_neighbour_takes_the_upper_voxel_at_halves():
    # labels 1..15 along x on the 15^3 grid of the previous test: output (i, 128, 128) samples
    # x = 135.5 - i, always a half; index floor(x + 0.5), 0 where that is outside
    data = np.broadcast_to(np.arange(1, 16, dtype=np.int16).reshape(15, 1, 1), (15, 15, 15))
    affine = np.eye(4)
    affine[:3, 3] = -7.5
    row = np.asanyarray(conform(nib.Nifti1Image(data, affine), labels=True).dataobj)[:, 128, 128]
    assert row[135] == 2 and row[128] == 9  # x = 0.5 -> index 1, x = 7.5 -> index 8
    assert row[136] == 1 and row[137] == 0  # x = -0.5 -> index 0, x = -1.5 -> outside
    assert row[122] == 15 and row[121] == 0  # x = 13.5 -> index 14, x = 14.5 -> index 15: outside


def test_label_values_are_kept(oblique_pair):
    _, labels = oblique_pair
    data = np.asanyarray(labels.dataobj)
    assert data.dtype == np.int16
    assert set(np.unique(data)) == {0, 7, 2035}


def test_float_labels_are_rounded_and_large_ids_widen_to_int32():
    data = np.full((8, 8, 8), 41.0004, np.float32)
    data[:4] = 40000.0
    out = np.asanyarray(conform(nib.Nifti1Image(data, np.eye(4)), labels=True).dataobj)
    assert out.dtype == np.int32
    assert set(np.unique(out)) == {0, 41, 40000}


def test_non_integral_labels_are_an_error():
    with pytest.raises(ValueError, match="non-integral"):
        conform(nib.Nifti1Image(np.full((4, 4, 4), 2.3, np.float32), np.eye(4)), labels=True)


def test_conform_output_is_conformed(oblique_pair):
    t1, labels = oblique_pair
    assert is_conformed(t1) and is_conformed(labels, labels=True)
    assert not is_conformed(labels)  # int16 is not a T1's uint8


@pytest.mark.parametrize(
    "img",
    [
        lia_image((256, 256, 255)),
        lia_image((270, 270, 270)),  # cubic, but 270 mm conforms to 256
        lia_image((256, 256, 256), zoom=1.1),
        lia_image((256, 256, 256), cosines=np.eye(3)),  # RAS
        lia_image((256, 256, 256), dtype=np.float32),
    ],
)
def test_is_conformed_rejects(img):
    assert not is_conformed(img, labels=False)


def test_is_conformed_accepts_header_only_images():
    assert is_conformed(lia_image((256,) * 3)) and is_conformed(lia_image((290,) * 3))
    assert is_conformed(lia_image((256,) * 3, dtype=np.int32), labels=True)
    assert not is_conformed(lia_image((256,) * 3, dtype=np.float32), labels=True)


def test_conform_file_python_writes_a_conformed_image(tmp_path):
    in_path, out_path = tmp_path / "t1.nii.gz", tmp_path / "out" / "t1.nii.gz"
    save_image(np.arange(8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8), np.eye(4), in_path)
    assert conform_file(in_path, out_path, backend="python") == "python"
    img = nib.load(out_path)
    assert is_conformed(img)
    np.testing.assert_allclose(img.affine, conformed_affine(np.eye(4), (8, 8, 8), 256))


def test_corrupt_input_leaves_no_output(tmp_path):
    bad, out_dir = tmp_path / "bad.nii.gz", tmp_path / "out"
    bad.write_bytes(b"not an image at all" * 10)
    with pytest.raises(ImageError, match="bad.nii.gz"):
        conform_file(bad, out_dir / "t1.nii.gz", backend="python")
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_unknown_backend_lists_the_allowed_ones(tmp_path):
    with pytest.raises(ValueError, match="auto, freesurfer, python"):
        conform_file(tmp_path / "in.nii.gz", tmp_path / "out.nii.gz", backend="ants")


@pytest.fixture
def fake_mri_convert(tmp_path, monkeypatch):
    """An ``mri_convert`` first on PATH that logs its arguments and copies input to output."""
    bin_dir, log = tmp_path / "bin", tmp_path / "mri_convert_args.json"
    bin_dir.mkdir()
    script = bin_dir / "mri_convert"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, shutil, sys\n"
        "args = sys.argv[1:]\n"
        f"json.dump(args, open({str(log)!r}, 'w'))\n"
        "shutil.copyfile(args[args.index('--input_volume') + 1],"
        " args[args.index('--output_volume') + 1])\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.mark.parametrize("labels", [False, True])
def test_auto_backend_runs_mri_convert_when_found(tmp_path, fake_mri_convert, labels):
    in_path, out_path = tmp_path / "in.nii.gz", tmp_path / "out" / "conformed.nii.gz"
    save_image(np.ones((4, 4, 4), np.int16), np.eye(4), in_path)
    assert conform_file(in_path, out_path, labels=labels) == "freesurfer"
    args = json.loads(fake_mri_convert.read_text())
    assert args[:1] == ["--conform"] and args[args.index("--input_volume") + 1] == str(in_path)
    written = args[args.index("--output_volume") + 1]
    assert written != str(out_path) and written.startswith(str(out_path.parent))  # then renamed
    assert out_path.read_bytes() == in_path.read_bytes()
    options = " ".join(args)
    if labels:
        assert "--resample_type nearest" in options
        assert "--out_data_type int" in options and "--no_scale 1" in options
    else:
        assert "--resample_type" not in options


# ----- bad inputs, through the first job that reads them -----


def fails_to_conform(path: Path, problem: str) -> None:
    """Conforming ``path`` fails naming it and ``problem``, and writes nothing."""
    out = path.parent / "out"
    fails_cleanly(
        lambda: conform_file(path, out / "t1.nii.gz", backend="python"), path, problem, out
    )


def test_truncated_nii_gz_fails_naming_the_file_and_leaves_no_output(tmp_path):
    path = small_t1(tmp_path / "t1weighted.nii.gz", shape=(20, 20, 20))
    path.write_bytes(path.read_bytes()[:1500])
    fails_to_conform(path, "not a readable NIfTI/MGZ image")


@pytest.mark.parametrize(
    "content",
    [gzip.compress(b"subject,age\nsub-1,30\n"), b"subject,age\nsub-1,30\n" * 30, b""],
    ids=["gzipped-text", "plain-text", "empty"],
)
def test_file_that_is_not_a_nifti_fails_naming_the_file(tmp_path, content):
    path = tmp_path / "t1weighted.nii.gz"
    path.write_bytes(content)
    fails_to_conform(path, "not a readable NIfTI/MGZ image")


def test_4d_image_fails_naming_the_file_and_its_shape(tmp_path):
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6, 3), np.float32), np.eye(4)), path)
    fails_to_conform(path, "expected a 3-D image, got shape (6, 6, 6, 3)")


def test_2d_image_fails_naming_the_file_and_its_shape(tmp_path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 7), np.float32), np.eye(4)), path)
    fails_to_conform(path, "expected a 3-D image, got shape (6, 7)")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nan_or_inf_voxels_fail_naming_the_file_and_their_count(tmp_path, value):
    data = np.random.default_rng(0).uniform(0, 100, (8, 8, 8)).astype(np.float32)
    data[1, 2, 3] = data[4, 5, 6] = value
    path = tmp_path / "t1weighted.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    fails_to_conform(path, "2 voxels are NaN or Inf")


@pytest.mark.parametrize("stage", ["compute", "write"])
def test_kill_9_during_conform_leaves_no_output_and_the_rerun_completes(tmp_path, stage):
    source = small_t1(tmp_path / "t1weighted.nii.gz", shape=(10, 12, 14))
    out, marker = tmp_path / "conformed", tmp_path / "killed-here"
    patch = (
        CHILD_HALF_WRITE
        if stage == "write"
        else """
    import meshseg.image.grid
    meshseg.image.grid.resample = lambda *args: pause()  # killed while reslicing
    """
    )
    start_and_kill(
        CHILD_PAUSE.format(marker=str(marker))
        + patch
        + f"""
    from meshseg.image.conform import conform_file
    conform_file({str(source)!r}, {str(out / "t1.nii.gz")!r}, backend="python")
    """,
        marker,
        tmp_path,
    )
    left = everything_in(out)
    if stage == "compute":
        assert left == []
    else:
        assert len(left) == 1 and left[0].startswith(".t1.nii.gz.part-"), left
        with pytest.raises(Exception):  # noqa: B017  (any error: what was left is not an image)
            np.asanyarray(nib.load(out / left[0]).dataobj).sum()

    assert conform_file(source, out / "t1.nii.gz", backend="python") == "python"
    assert everything_in(out) == ["t1.nii.gz"]
    assert is_conformed(nib.load(out / "t1.nii.gz"))
