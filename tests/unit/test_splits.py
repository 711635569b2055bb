import pandas as pd
import pytest

from meshseg.splits import split_counts, stratified_split

COHORTS = {"Extra-18": 18, "MMRR-21": 21, "NKI-RS-22": 22, "NKI-TRT-20": 20, "OASIS-TRT-20": 20}
MINDBOGGLE = pd.DataFrame([{"subject": f"{c}-{i}", "cohort": c} for c, n in COHORTS.items()
                           for i in range(1, n + 1)])
DEFAULT = {"train": 70, "validation": 10, "test": 21}


def test_sizes_scale_to_the_number_of_subjects():
    assert split_counts(101, DEFAULT) == DEFAULT
    assert split_counts(10, DEFAULT) == {"train": 7, "validation": 1, "test": 2}
    assert sum(split_counts(7, DEFAULT).values()) == 7
    with pytest.raises(ValueError, match="must not all be 0"):
        split_counts(5, {"train": 0, "validation": 0, "test": 0})


def test_mindboggle_split_is_70_10_21_and_stratified():
    table = stratified_split(MINDBOGGLE, DEFAULT, seed=0)
    assert table["split"].value_counts().to_dict() == DEFAULT
    per_cohort = pd.crosstab(table["cohort"], table["split"])
    for cohort, n in COHORTS.items():
        # each cohort's test share is within one subject of its proportional share
        assert abs(per_cohort.loc[cohort, "test"] - n * 21 / 101) <= 1.0
        assert per_cohort.loc[cohort, "validation"] >= 1


def test_seeded_and_independent_of_row_order():
    a = stratified_split(MINDBOGGLE, DEFAULT, seed=3)
    b = stratified_split(MINDBOGGLE.sample(frac=1, random_state=1), DEFAULT, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(stratified_split(MINDBOGGLE, DEFAULT, seed=4))
