import logging

import numpy as np
import pytest

from meshseg.image.intensity import intensity_range, minmax_normalise, pad_to_cube, qnormalise


def test_pad_is_centred_and_keeps_world_positions():
    data = np.arange(4 * 6 * 8, dtype=np.int16).reshape(4, 6, 8)
    affine = np.array([[-1, 0, 0, 10], [0, 0, 1, -5], [0, -1, 0, 7], [0, 0, 0, 1.0]])
    out, new_affine = pad_to_cube(data, affine, size=10)
    assert out.shape == (10, 10, 10) and out.dtype == data.dtype
    np.testing.assert_array_equal(out[3:7, 2:8, 1:9], data)
    assert out.sum() == data.sum()
    # voxel (0, 0, 0) of the input is voxel (3, 2, 1) of the output, at the same world point
    np.testing.assert_allclose(new_affine @ [3, 2, 1, 1], affine @ [0, 0, 0, 1])


def test_larger_axis_is_cropped_centred_with_a_warning(caplog):
    data = np.zeros((12, 4, 4), np.uint8)
    data[2:10] = 1
    with caplog.at_level(logging.WARNING):
        out, affine = pad_to_cube(data, np.eye(4), size=8)
    assert "cropping" in caplog.text
    assert out.shape == (8, 8, 8) and out[:, 2:6, 2:6].all()
    np.testing.assert_allclose(affine @ [0, 2, 2, 1], [2, 0, 0, 1])


def test_minmax_maps_to_unit_range():
    out = minmax_normalise(np.array([10, 20, 30], dtype=np.uint8))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0, 0.5, 1])


def test_constant_image_is_an_error():
    with pytest.raises(ValueError, match="constant image"):
        minmax_normalise(np.full((3, 3, 3), 7.0))


def test_intensity_range_is_the_one_constant_image_check():
    assert intensity_range(np.array([3, 9, 5], np.int16)) == (3, 9)
    with pytest.raises(ValueError, match=r"constant image \(every voxel is 7\)"):
        intensity_range(np.full((2, 2), 7, np.int16))


def test_qnormalise_of_a_prepared_volume_is_brainchops_qnormalize_of_the_conformed_one():
    conformed = np.random.default_rng(0).integers(0, 256, (20, 18, 16)).astype(np.float32)
    conformed[:5] = 0  # background
    q02, q98 = np.quantile(conformed, [0.02, 0.98])
    brainchop = np.clip((conformed - q02) / (q98 - q02 + 1e-3), 0, 1)
    ours = qnormalise(conformed / 255)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, brainchop, atol=1e-6)
    assert ours.min() == 0 and ours.max() == 1
