import numpy as np
import pytest

from meshseg.vote import VoteAggregator


def test_agreeing_subvolumes_reproduce_the_input():
    truth = np.random.default_rng(0).integers(0, 4, size=(8, 8, 8)).astype(np.uint8)
    votes = VoteAggregator((8, 8, 8), 4, max_votes=8)
    locations = np.array([(x, y, z) for x in (0, 4) for y in (0, 4) for z in (0, 4)])
    votes.add(np.stack([truth[x:x + 4, y:y + 4, z:z + 4] for x, y, z in locations]), locations)
    np.testing.assert_array_equal(votes.result(), truth)


def test_majority_wins_and_ties_go_to_the_lowest_class():
    votes = VoteAggregator((2, 1, 1), 3, max_votes=3)
    loc = np.zeros((1, 3), int)
    for first, second in [(2, 1), (2, 2), (1, 1)]:
        votes.add(np.array([[[[first]], [[second]]]]).reshape(1, 2, 1, 1), loc)
    # voxel 0: votes 2, 2, 1 -> 2; voxel 1: votes 1, 2, 1 -> 1
    np.testing.assert_array_equal(votes.result().ravel(), [2, 1])
    tie = VoteAggregator((1, 1, 1), 3, max_votes=2)
    tie.add(np.full((1, 1, 1, 1), 2), loc)
    tie.add(np.full((1, 1, 1, 1), 1), loc)
    assert tie.result().item() == 1


def test_unvoted_voxels_are_background_and_counters_do_not_overflow():
    votes = VoteAggregator((4, 4, 4), 2, max_votes=300)
    assert votes.counts.dtype == np.uint16
    for _ in range(300):
        votes.add(np.ones((1, 2, 2, 2), np.uint8), np.zeros((1, 3), int))
    assert votes.counts[1, 0, 0, 0] == 300
    assert votes.result()[0, 0, 0] == 1 and votes.result()[3, 3, 3] == 0


def test_mismatched_batch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        VoteAggregator((4, 4, 4), 2, 1).add(np.zeros((2, 2, 2, 2)), np.zeros((1, 3), int))
