import numpy as np

from meshseg.image.grid import nearest_index, nonzero_box, resample, sample_nearest, source_coords


def test_source_coords_cover_the_box_by_slabs_with_the_mapped_indices(monkeypatch):
    monkeypatch.setattr("meshseg.image.grid.SLAB_VOXELS", 12)  # 2 rows of the 2 x 3 columns
    vox2vox = np.array([[0, 1, 0, 10], [2, 0, 0, 0], [0, 0, 1, -1], [0, 0, 0, 1]], float)
    box = (slice(1, 6), slice(0, 2), slice(4, 7))
    slabs = list(source_coords(vox2vox, box))
    assert [rows for rows, _ in slabs] == [slice(1, 3), slice(3, 5), slice(5, 6)]
    coords = np.concatenate([c for _, c in slabs], axis=1)
    i, j, k = np.meshgrid(range(1, 6), range(0, 2), range(4, 7), indexing="ij")
    np.testing.assert_array_equal(coords, np.stack([j + 10, 2 * i, k - 1]))


def test_resample_samples_where_reachable_and_leaves_zeros_elsewhere():
    volume = np.arange(1, 9, dtype=np.int16).reshape(2, 2, 2)
    shift = np.eye(4)
    shift[:3, 3] = -3  # target voxel (3, 3, 3) is source voxel 0
    out = resample(volume, shift, (8, 8, 8), sample_nearest)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out[3:5, 3:5, 3:5], volume)
    assert out.sum() == volume.sum()


def test_ties_within_tolerance_round_as_exact_halves():
    coords = np.array([[0.5 - 1e-6, 0.5 + 1e-6, 0.4], [1.5, 1.5, 1.5], [2.5, -0.5, 2.6]])
    np.testing.assert_array_equal(nearest_index(coords), [[1, 1, 0], [2, 2, 2], [3, 0, 3]])
    np.testing.assert_array_equal(
        nearest_index(coords, np.array([False, True, False])), [[0, 0, 0], [2, 2, 2], [2, -1, 3]]
    )


def test_nearest_samples_outside_the_volume_are_zero():
    volume = np.full((2, 2, 2), 7, np.int16)
    coords = np.array([[0.0, -0.6, 1.4], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(sample_nearest(volume, coords), [7, 0, 7])


def test_nonzero_box_grows_within_the_volume_and_is_none_when_empty():
    image = np.zeros((10, 10, 10))
    image[2, 5:7, 9] = 1
    assert nonzero_box(image) == (slice(2, 3), slice(5, 7), slice(9, 10))
    assert nonzero_box(image, margin=3) == (slice(0, 6), slice(2, 10), slice(6, 10))
    assert nonzero_box(np.zeros((4, 4, 4)), margin=1) is None


def test_the_identity_is_a_copy_equal_to_sampling_every_voxel():
    volume = np.random.default_rng(0).integers(0, 255, (5, 6, 7)).astype(np.uint8)
    shift = np.eye(4)
    shift[:3, 3] = 1e-4  # not the identity: every voxel sampled
    sampled = resample(volume, shift, volume.shape, sample_nearest)
    np.testing.assert_array_equal(sampled, volume)

    def never(volume, coords):
        raise AssertionError("the identity samples nothing")

    almost = np.eye(4) + 1e-9
    copied = resample(volume, almost, volume.shape, never)
    np.testing.assert_array_equal(copied, volume)
    assert copied.dtype == volume.dtype and copied is not volume
    assert not resample(volume, np.eye(4), (5, 6, 8), sample_nearest)[..., 7].any()
