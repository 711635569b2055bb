import numpy as np
import pytest

from meshseg.nn.vote import RULES, VoteAggregator


def random_crops(n=60, shape=(30, 20, 24), patch=8, n_classes=5, seed=0):
    """Softmax-like probabilities ``(n, C, p, p, p)`` of random crops and their start corners."""
    rng = np.random.default_rng(seed)
    locations = np.stack([rng.integers(0, s - patch + 1, size=n) for s in shape], axis=1)
    probabilities = rng.random((n, n_classes, patch, patch, patch), dtype=np.float32)
    return probabilities / probabilities.sum(1, keepdims=True), locations


def whole_volume_vote(probabilities, locations, shape, rule):
    """The rules' definition on whole-volume counts and float32 sums (crops in first-axis order):
    summed probabilities (soft), and per class its votes and its voters' summed probability."""
    n_classes, patch = probabilities.shape[1:3]
    classes = np.arange(n_classes)[:, None, None, None]
    counts = np.zeros((n_classes, *shape), int)
    sums = np.zeros((n_classes, *shape), np.float32)
    confidence = np.zeros((n_classes, *shape), np.float32)
    for i in np.argsort(locations[:, 0], kind="stable"):
        x, y, z = locations[i]
        box = (slice(None), slice(x, x + patch), slice(y, y + patch), slice(z, z + patch))
        voted = probabilities[i].argmax(0) == classes
        sums[box] += probabilities[i]
        counts[box] += voted
        confidence[box] += np.where(voted, probabilities[i], 0)
    if rule == "soft":
        return sums.argmax(0), counts
    if rule == "hard-lowest":
        return counts.argmax(0), counts
    tied = counts == counts.max(0)
    tied &= confidence == np.where(tied, confidence, -1).max(0)
    return np.where(tied, classes, n_classes).min(0), counts


def test_agreeing_subvolumes_reproduce_the_input():
    truth = np.random.default_rng(0).integers(0, 4, size=(8, 8, 8)).astype(np.uint8)
    votes = VoteAggregator((8, 8, 8), 4, slab=3)
    locations = np.array([(x, y, z) for x in (0, 4) for y in (0, 4) for z in (0, 4)])
    votes.add(
        np.stack([truth[x : x + 4, y : y + 4, z : z + 4] for x, y, z in locations]), locations
    )
    np.testing.assert_array_equal(votes.result(), truth)


def test_majority_wins_and_the_reference_rule_gives_ties_to_the_lowest_class():
    votes = VoteAggregator((2, 1, 1), 3, rule="hard-lowest", slab=1)
    loc = np.zeros((1, 3), int)
    for first, second in [(2, 1), (2, 2), (1, 1)]:
        votes.add(np.array([[[[first]], [[second]]]]).reshape(1, 2, 1, 1), loc)
    # voxel 0: votes 2, 2, 1 -> 2; voxel 1: votes 1, 2, 1 -> 1
    np.testing.assert_array_equal(votes.result().ravel(), [2, 1])
    tie = VoteAggregator((1, 1, 1), 3, rule="hard-lowest")
    tie.add(np.full((1, 1, 1, 1), 2), loc)
    tie.add(np.full((1, 1, 1, 1), 1), loc)
    assert tie.result().item() == 1


def one_voxel_votes(rule: str) -> int:
    """Five crops over one voxel: votes 1, 1, 2, 2, 0; class 2 holds more probability than 1,
    class 0 the most of all."""
    probabilities = np.array(
        [
            [0.33, 0.34, 0.33],
            [0.33, 0.34, 0.33],
            [0.44, 0.10, 0.46],
            [0.49, 0.00, 0.51],
            [0.50, 0.25, 0.25],
        ],
        np.float32,
    )
    votes = VoteAggregator((1, 1, 1), 3, rule=rule)
    votes.add(probabilities.reshape(5, 3, 1, 1, 1), np.zeros((5, 3), int))
    return votes.result().item()


def test_tied_votes_go_to_the_class_with_more_probability_not_the_lower_id():
    # 1:2 tie with 2, whose voters were surer (0.34 + 0.34 vs 0.46 + 0.51); 0 has 1 vote only
    assert one_voxel_votes("hard") == 2
    assert one_voxel_votes("hard-lowest") == 1
    assert one_voxel_votes("soft") == 0  # summed probability 2.09


def test_unvoted_voxels_are_background_and_counters_do_not_overflow():
    votes = VoteAggregator((4, 4, 4), 3)
    for _ in range(300):  # 300 votes for class 1 would wrap a uint8 counter to 44
        votes.add(np.ones((1, 2, 2, 2), np.uint8), np.zeros((1, 3), int))
    for _ in range(100):
        votes.add(np.full((1, 2, 2, 2), 2, np.uint8), np.zeros((1, 3), int))
    assert votes.result()[0, 0, 0] == 1 and votes.result()[3, 3, 3] == 0


@pytest.mark.parametrize("slab", [1, 5, 16, 64])
def test_slab_vote_equals_the_whole_volume_count(slab):
    probabilities, locations = random_crops()
    labels = probabilities.argmax(1).astype(np.uint8)
    expected, _ = whole_volume_vote(probabilities, locations, (30, 20, 24), "hard-lowest")
    order = np.argsort(locations[:, 0], kind="stable")  # in order across calls
    votes = VoteAggregator((30, 20, 24), 5, slab=slab)
    votes.add(labels[order[:25]], locations[order[:25]])
    votes.add(labels[order[25:]], locations[order[25:]])
    np.testing.assert_array_equal(votes.result(), expected)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("slab,batches", [(1, 1), (3, 7), (8, 60), (64, 4)])
def test_each_rule_equals_its_whole_volume_definition(rule, slab, batches):
    probabilities, locations = random_crops()
    expected, _ = whole_volume_vote(probabilities, locations, (30, 20, 24), rule)
    order = np.argsort(locations[:, 0], kind="stable")
    votes = VoteAggregator((30, 20, 24), 5, rule=rule, slab=slab)
    for batch in np.array_split(order, batches):  # each call in any order, the calls in order
        votes.add(probabilities[batch[::-1]], locations[batch[::-1]])
    np.testing.assert_array_equal(votes.result(), expected)


def test_the_rules_differ_only_where_the_top_count_is_tied():
    probabilities, locations = random_crops()
    hard, counts = whole_volume_vote(probabilities, locations, (30, 20, 24), "hard")
    lowest, _ = whole_volume_vote(probabilities, locations, (30, 20, 24), "hard-lowest")
    tied = (counts == counts.max(0)).sum(0) > 1
    assert tied.any() and (hard[tied] != lowest[tied]).any()  # the data has ties that matter
    np.testing.assert_array_equal(hard[~tied], lowest[~tied])
    votes = {rule: VoteAggregator((30, 20, 24), 5, rule=rule) for rule in ("hard", "hard-lowest")}
    for aggregator in votes.values():
        aggregator.add(probabilities, locations)
    np.testing.assert_array_equal(
        votes["hard"].result()[~tied], votes["hard-lowest"].result()[~tied]
    )


def test_soft_vote_is_the_argmax_of_summed_probabilities():
    probabilities = np.array([[0.6, 0.4], [0.6, 0.4], [0.0, 1.0]], np.float32).reshape(
        3, 2, 1, 1, 1
    )
    soft = VoteAggregator((1, 1, 1), 2, rule="soft")
    soft.add(probabilities, np.zeros((3, 3), int))
    hard = VoteAggregator((1, 1, 1), 2, rule="hard")
    hard.add(probabilities, np.zeros((3, 3), int))
    assert soft.result().item() == 1 and hard.result().item() == 0  # sums 1.2 vs 1.8; votes 2:1


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        VoteAggregator((4, 4, 4), 2).add(np.zeros((2, 2, 2, 2)), np.zeros((1, 3), int))
    with pytest.raises(ValueError, match="unknown vote rule 'majority'"):
        VoteAggregator((4, 4, 4), 2, rule="majority")
    with pytest.raises(ValueError, match="the hard vote needs probabilities"):
        VoteAggregator((4, 4, 4), 2, rule="hard").add(
            np.zeros((1, 2, 2, 2), np.uint8), np.zeros((1, 3), int)
        )
    with pytest.raises(ValueError, match="3 classes, not 2"):
        VoteAggregator((4, 4, 4), 2, rule="soft").add(
            np.zeros((1, 3, 2, 2, 2)), np.zeros((1, 3), int)
        )
    votes = VoteAggregator((4, 4, 4), 2, rule="soft")
    votes.add(np.zeros((1, 2, 2, 2, 2)), np.array([[2, 0, 0]]))
    with pytest.raises(ValueError, match=r"first-axis start \(got 1 after 2\)"):
        votes.add(np.zeros((1, 2, 2, 2, 2)), np.array([[1, 0, 0]]))


def test_hard_vote_takes_class_indices_with_their_confidence_as_it_takes_probabilities():
    probabilities, locations = random_crops(n_classes=104, n=40)
    labels = probabilities.argmax(1)
    confidence = np.take_along_axis(probabilities, labels[:, None], 1)[:, 0]
    expected, _ = whole_volume_vote(probabilities, locations, (30, 20, 24), "hard")
    votes = VoteAggregator((30, 20, 24), 104, rule="hard", slab=4)
    votes.add(labels.astype(np.uint8), locations, confidence)
    np.testing.assert_array_equal(votes.result(), expected)  # voxels see up to 40 classes
