import numpy as np
import pytest

from meshseg.nn.subvolumes import (
    gaussian_locations,
    grid_locations,
    grid_starts,
    inference_locations,
)


def test_grid_starts_worked_example():
    assert grid_starts(256, 38) == [0, 38, 76, 114, 152, 190, 218]
    assert grid_starts(10, 5) == [0, 5]
    assert grid_starts(11, 5) == [0, 5, 6]


def test_grid_covers_every_voxel():
    size, patch = 50, 12
    covered = np.zeros((size,) * 3, bool)
    for x, y, z in grid_locations(size, patch):
        covered[x : x + patch, y : y + patch, z : z + patch] = True
    assert covered.all()
    assert len(grid_locations(256, 38)) == 343


def test_gaussian_crops_stay_inside_and_follow_the_sd():
    rng = np.random.default_rng(0)
    starts = gaussian_locations(20000, 256, 38, 64, rng)
    assert starts.min() >= 0 and starts.max() <= 256 - 38
    centres = starts + 19
    assert centres.min() == 19 and centres.max() == 237
    assert abs(centres.mean() - 128) < 1.5
    assert 50 < centres.std() < 64  # truncation narrows the spread a little


def test_covariance_50_keeps_crops_near_the_centre():
    centres = gaussian_locations(5000, 256, 38, np.sqrt(50), np.random.default_rng(1)) + 19
    assert np.abs(centres - 128).max() <= 35
    assert abs(centres.std() - np.sqrt(50)) < 0.3


def test_inference_locations_grid_first_then_gaussian(caplog):
    locations = inference_locations(512, 256, 38, 64, np.random.default_rng(0))
    assert len(locations) == 512
    np.testing.assert_array_equal(locations[:343], grid_locations(256, 38))
    assert len(inference_locations(100, 256, 38, 64, np.random.default_rng(0))) == 343
    assert "grid only" in caplog.text


def test_same_seed_same_locations():
    a = gaussian_locations(10, 256, 38, 64, np.random.default_rng(5))
    b = gaussian_locations(10, 256, 38, 64, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("patch", [0, 300])
def test_bad_sizes_raise(patch):
    with pytest.raises(ValueError, match="subvolume size"):
        grid_starts(256, patch)
