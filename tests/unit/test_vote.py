import numpy as np
import pytest

from meshseg.vote import VoteAggregator


def test_agreeing_subvolumes_reproduce_the_input():
    truth = np.random.default_rng(0).integers(0, 4, size=(8, 8, 8)).astype(np.uint8)
    votes = VoteAggregator((8, 8, 8), 4, slab=3)
    locations = np.array([(x, y, z) for x in (0, 4) for y in (0, 4) for z in (0, 4)])
    votes.add(np.stack([truth[x:x + 4, y:y + 4, z:z + 4] for x, y, z in locations]), locations)
    np.testing.assert_array_equal(votes.result(), truth)


def test_majority_wins_and_ties_go_to_the_lowest_class():
    votes = VoteAggregator((2, 1, 1), 3, slab=1)
    loc = np.zeros((1, 3), int)
    for first, second in [(2, 1), (2, 2), (1, 1)]:
        votes.add(np.array([[[[first]], [[second]]]]).reshape(1, 2, 1, 1), loc)
    # voxel 0: votes 2, 2, 1 -> 2; voxel 1: votes 1, 2, 1 -> 1
    np.testing.assert_array_equal(votes.result().ravel(), [2, 1])
    tie = VoteAggregator((1, 1, 1), 3)
    tie.add(np.full((1, 1, 1, 1), 2), loc)
    tie.add(np.full((1, 1, 1, 1), 1), loc)
    assert tie.result().item() == 1


def test_unvoted_voxels_are_background_and_counters_do_not_overflow():
    votes = VoteAggregator((4, 4, 4), 3)
    for _ in range(300):  # 300 votes for class 1 would wrap a uint8 counter to 44
        votes.add(np.ones((1, 2, 2, 2), np.uint8), np.zeros((1, 3), int))
    for _ in range(100):
        votes.add(np.full((1, 2, 2, 2), 2, np.uint8), np.zeros((1, 3), int))
    assert votes.result()[0, 0, 0] == 1 and votes.result()[3, 3, 3] == 0


@pytest.mark.parametrize("slab", [1, 5, 16, 64])
def test_slab_vote_equals_the_whole_volume_count(slab):
    rng = np.random.default_rng(0)
    shape, patch, n_classes = (30, 20, 24), 8, 5
    locations = np.stack([rng.integers(0, s - patch + 1, size=60) for s in shape], axis=1)
    labels = rng.integers(0, n_classes, size=(60, patch, patch, patch)).astype(np.uint8)
    counts = np.zeros((n_classes, *shape), int)
    for crop, (x, y, z) in zip(labels, locations):
        for c in range(n_classes):
            counts[c, x:x + patch, y:y + patch, z:z + patch] += crop == c
    votes = VoteAggregator(shape, n_classes, slab=slab)
    votes.add(labels[:25], locations[:25])
    votes.add(labels[25:], locations[25:])
    np.testing.assert_array_equal(votes.result(), np.argmax(counts, axis=0))


def test_mismatched_batch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        VoteAggregator((4, 4, 4), 2).add(np.zeros((2, 2, 2, 2)), np.zeros((1, 3), int))
