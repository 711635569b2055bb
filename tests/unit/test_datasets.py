"""The dataset resolver: demo, Mindboggle-101 and folder subjects as one table."""

import pytest
import yaml

from meshseg.data.datasets import (
    DATA_LICENCES,
    data_licence,
    find_subjects,
    folder_sheet,
    resolve_dataset,
)

SPLIT = {"train": 70, "validation": 10, "test": 20}
LAYOUT = {
    "t1": "raw/{cohort}_volumes/{subject}/t1weighted.nii.gz",
    "labels": "raw/{cohort}_volumes/{subject}/{label_file}",
}
SHEET = "subject\tcohort\tsplit\nb\tMMRR-21\ttest\na\tOASIS-TRT-20\ttrain\n"


def shipped_config(**changes) -> dict:
    """config/config.yaml with top-level ``changes``."""
    with open("config/config.yaml") as file:
        return {**yaml.safe_load(file), **changes}


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def scans(tmp_path):
    for subject in ("sub-01", "sub-02", "sub-03", "sub-04"):
        touch(tmp_path / subject / "anat" / "T1w.nii.gz")
    for subject in ("sub-01", "sub-02", "sub-03"):
        touch(tmp_path / subject / "anat" / "labels.nii.gz")
    touch(tmp_path / "sub-05" / "extra" / "anat" / "T1w.nii.gz")  # two folders deep: not a match
    return tmp_path


def test_subjects_are_found_by_pattern_with_optional_labels(scans):
    found = find_subjects(
        f"{scans}/{{subject}}/anat/T1w.nii.gz", f"{scans}/{{subject}}/anat/labels.nii.gz"
    )
    assert found["subject"].tolist() == ["sub-01", "sub-02", "sub-03", "sub-04"]
    assert found.loc[0, "t1"] == f"{scans}/sub-01/anat/T1w.nii.gz"
    assert found.loc[0, "labels"] == f"{scans}/sub-01/anat/labels.nii.gz"
    assert found.loc[3, "labels"] == ""


def test_without_a_label_pattern_no_subject_has_labels(scans):
    found = find_subjects(f"{scans}/{{subject}}/anat/T1w.nii.gz")
    assert (found["labels"] == "").all() and len(found) == 4


def test_file_name_patterns_work_too(tmp_path):
    (
        touch(tmp_path / "a_T1w.nii.gz"),
        touch(tmp_path / "b_T1w.nii.gz"),
        touch(tmp_path / "b_T2w.nii.gz"),
    )
    assert find_subjects(f"{tmp_path}/{{subject}}_T1w.nii.gz")["subject"].tolist() == ["a", "b"]


@pytest.mark.parametrize(
    "pattern,problem",
    [
        ("data/t1.nii.gz", "exactly once"),
        ("data/{subject}/{subject}.nii.gz", "exactly once"),
        ("nowhere/{subject}.nii.gz", "no T1 matches"),
    ],
)
def test_bad_patterns_are_named(pattern, problem):
    with pytest.raises(ValueError, match=problem):
        find_subjects(pattern)


def test_labelled_subjects_are_split_and_unlabelled_ones_are_test(scans):
    found = find_subjects(
        f"{scans}/{{subject}}/anat/T1w.nii.gz", f"{scans}/{{subject}}/anat/labels.nii.gz"
    )
    sheet = folder_sheet(found, SPLIT, seed=0, train=True)
    assert sheet.loc["sub-04", "split"] == "test"
    assert sorted(sheet.loc[["sub-01", "sub-02", "sub-03"], "split"]) == ["test", "train", "train"]
    assert sheet.equals(folder_sheet(found.iloc[::-1], SPLIT, seed=0, train=True))  # order-free


def test_with_pretrained_models_every_subject_is_test(scans):
    found = find_subjects(f"{scans}/{{subject}}/anat/T1w.nii.gz")
    assert (folder_sheet(found, SPLIT, seed=0, train=False)["split"] == "test").all()


def test_training_without_any_labels_is_refused(scans):
    found = find_subjects(f"{scans}/{{subject}}/anat/T1w.nii.gz")
    with pytest.raises(ValueError, match="no subject has a label file"):
        folder_sheet(found, SPLIT, seed=0, train=True)


def test_demo_subjects_come_from_its_sheet_with_files_in_the_mindboggle_layout():
    table = resolve_dataset(shipped_config(), LAYOUT)
    assert list(table.columns) == ["subject", "cohort", "split", "t1", "labels"]
    assert table["split"].value_counts().to_dict() == {"train": 5, "validation": 1, "test": 2}
    row = table.loc["MNI152-demo-7"]
    assert row["t1"] == "raw/MNI152-demo_volumes/MNI152-demo-7/t1weighted.nii.gz"
    assert row["labels"] == "raw/MNI152-demo_volumes/MNI152-demo-7/labels.gwm.nii.gz"


def test_mindboggle_subjects_come_from_the_written_sheet(tmp_path):
    (tmp_path / "sheet.tsv").write_text(SHEET)
    config = shipped_config(dataset="mindboggle101")
    config["mindboggle101"] = {**config["mindboggle101"], "sheet": str(tmp_path / "sheet.tsv")}
    table = resolve_dataset(config, LAYOUT)
    assert table.index.tolist() == ["a", "b"] and table.loc["a", "cohort"] == "OASIS-TRT-20"
    assert table.loc["b", "labels"] == "raw/MMRR-21_volumes/b/labels.DKT31.manual+aseg.nii.gz"


def test_a_sheet_without_training_subjects_is_refused_unless_the_models_are_pretrained(tmp_path):
    (tmp_path / "sheet.tsv").write_text("subject\tcohort\tsplit\nb\tMMRR-21\ttest\n")
    config = shipped_config(dataset="mindboggle101")
    config["mindboggle101"] = {**config["mindboggle101"], "sheet": str(tmp_path / "sheet.tsv")}
    with pytest.raises(ValueError, match="sheet.tsv: no subject has split 'train'"):
        resolve_dataset(config, LAYOUT)
    config["pretrained"] = {"meshnet": "meshnet.pt"}
    assert resolve_dataset(config, LAYOUT)["split"].tolist() == ["test"]


def test_a_missing_demo_sheet_is_named(tmp_path):
    config = shipped_config()
    config["demo"] = {**config["demo"], "sheet": str(tmp_path / "nowhere.tsv")}
    with pytest.raises(ValueError, match="nowhere.tsv: cannot read the subject sheet"):
        resolve_dataset(config, LAYOUT)


def folder_config(scans, sheet: str = "") -> dict:
    config = shipped_config(dataset="folder")
    config["folder"] = {
        **config["folder"],
        "t1": f"{scans}/{{subject}}/anat/T1w.nii.gz",
        "labels": f"{scans}/{{subject}}/anat/labels.nii.gz",
        "sheet": sheet,
    }
    return config


def test_folder_subjects_are_found_and_split_with_the_split_seed(scans):
    table = resolve_dataset(folder_config(scans), LAYOUT)
    assert table.index.tolist() == ["sub-01", "sub-02", "sub-03", "sub-04"]
    assert table.loc["sub-04", "labels"] == "" and table.loc["sub-04", "split"] == "test"
    assert table.loc["sub-01", "t1"] == f"{scans}/sub-01/anat/T1w.nii.gz"
    found = find_subjects(
        f"{scans}/{{subject}}/anat/T1w.nii.gz", f"{scans}/{{subject}}/anat/labels.nii.gz"
    )
    assert table["split"].equals(folder_sheet(found, SPLIT, seed=0, train=True)["split"])


def test_a_folder_sheet_chooses_the_subjects_and_each_needs_a_t1(scans, tmp_path):
    sheet = tmp_path / "mine.tsv"
    sheet.write_text("subject\tcohort\tsplit\nsub-01\tmine\ttrain\nsub-04\tmine\ttest\n")
    table = resolve_dataset(folder_config(scans, str(sheet)), LAYOUT)
    assert table["split"].to_dict() == {"sub-01": "train", "sub-04": "test"}
    assert table.loc["sub-01", "labels"] == f"{scans}/sub-01/anat/labels.nii.gz"
    sheet.write_text("subject\tcohort\tsplit\nsub-01\tmine\ttrain\nsub-09\tmine\ttest\n")
    with pytest.raises(
        ValueError,
        match=r"mine.tsv: subjects \['sub-09'\] have no T1 matching folder.t1 .*T1w.nii.gz",
    ):
        resolve_dataset(folder_config(scans, str(sheet)), LAYOUT)


def test_a_folder_pattern_that_matches_nothing_is_named(tmp_path):
    with pytest.raises(ValueError, match="no T1 matches the pattern .*nowhere"):
        resolve_dataset(folder_config(tmp_path / "nowhere"), LAYOUT)


def test_a_folder_dataset_has_the_users_licence():
    assert data_licence("demo") == DATA_LICENCES["demo"]
    assert "state its terms" in data_licence("folder")
