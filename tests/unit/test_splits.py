import pandas as pd
import pytest

from meshseg.data.splits import split_counts, split_table_file, stratified_split, update_split

COHORTS = {"Extra-18": 18, "MMRR-21": 21, "NKI-RS-22": 22, "NKI-TRT-20": 20, "OASIS-TRT-20": 20}
MINDBOGGLE = pd.DataFrame(
    [{"subject": f"{c}-{i}", "cohort": c} for c, n in COHORTS.items() for i in range(1, n + 1)]
)
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


def test_update_split_without_previous_is_the_seeded_split():
    pd.testing.assert_frame_equal(
        update_split(MINDBOGGLE, {}, DEFAULT, seed=2),
        stratified_split(MINDBOGGLE, DEFAULT, seed=2),
        check_dtype=False,
    )


def test_update_split_keeps_previous_splits_and_fills_what_each_split_lacks():
    # A hand-made sheet for two cohorts (41 subjects): everything is test.
    two = MINDBOGGLE[MINDBOGGLE["cohort"].isin(["MMRR-21", "NKI-TRT-20"])]
    previous = dict.fromkeys(two["subject"], "test")
    previous["Gone-1"] = "train"  # no longer chosen
    table = update_split(MINDBOGGLE, previous, DEFAULT, seed=0)
    splits = dict(zip(table["subject"], table["split"]))
    assert {s: splits[s] for s in two["subject"]} == dict.fromkeys(two["subject"], "test")
    assert "Gone-1" not in splits and len(table) == 101
    # 60 new subjects: test already has 41 of its 21, so they fill train and validation 70:10
    # (52.5 : 7.5, the tie going to train) and every new cohort gets a validation subject
    new = table[~table["subject"].isin(two["subject"])]
    assert new["split"].value_counts().to_dict() == {"train": 53, "validation": 7}
    assert set(new.loc[new["split"] == "validation", "cohort"]) == {
        "Extra-18",
        "NKI-RS-22",
        "OASIS-TRT-20",
    }


def test_update_split_reaches_the_scaled_sizes_when_previous_did():
    drawn = stratified_split(MINDBOGGLE[MINDBOGGLE["cohort"] != "Extra-18"], DEFAULT, seed=0)
    table = update_split(MINDBOGGLE, dict(zip(drawn["subject"], drawn["split"])), DEFAULT, seed=0)
    assert table["split"].value_counts().to_dict() == DEFAULT
    splits = table.set_index("subject")["split"]
    assert splits[drawn["subject"]].tolist() == drawn["split"].tolist()


def test_split_table_file_updates_an_existing_sheet(tmp_path):
    table, sheet = tmp_path / "table.tsv", tmp_path / "sheet.tsv"
    MINDBOGGLE.head(3).to_csv(table, sep="\t", index=False)
    sheet.write_text("subject\tcohort\tsplit\nExtra-18-1\tExtra-18\ttest\nOld-1\tOld\ttrain\n")
    split_table_file(table, DEFAULT, 0, sheet)
    written = pd.read_csv(sheet, sep="\t")
    assert written["subject"].tolist() == ["Extra-18-1", "Extra-18-2", "Extra-18-3"]
    assert written["split"].tolist()[0] == "test" and set(written["split"].tolist()[1:]) == {
        "train"
    }
    sheet.write_text("subject\tcohort\tsplit\nExtra-18-1\tExtra-18\tholdout\n")
    with pytest.raises(ValueError, match=r"sheet\.tsv: unknown split values \['holdout'\]"):
        split_table_file(table, DEFAULT, 0, sheet)
