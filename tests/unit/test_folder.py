import pytest

from meshseg.data.folder import find_subjects, folder_sheet

SPLIT = {"train": 70, "validation": 10, "test": 20}


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
    found = find_subjects(f"{scans}/{{subject}}/anat/T1w.nii.gz", f"{scans}/{{subject}}/anat/labels.nii.gz")
    assert found["subject"].tolist() == ["sub-01", "sub-02", "sub-03", "sub-04"]
    assert found.loc[0, "t1"] == f"{scans}/sub-01/anat/T1w.nii.gz"
    assert found.loc[0, "labels"] == f"{scans}/sub-01/anat/labels.nii.gz"
    assert found.loc[3, "labels"] == ""


def test_without_a_label_pattern_no_subject_has_labels(scans):
    found = find_subjects(f"{scans}/{{subject}}/anat/T1w.nii.gz")
    assert (found["labels"] == "").all() and len(found) == 4


def test_file_name_patterns_work_too(tmp_path):
    touch(tmp_path / "a_T1w.nii.gz"), touch(tmp_path / "b_T1w.nii.gz"), touch(tmp_path / "b_T2w.nii.gz")
    assert find_subjects(f"{tmp_path}/{{subject}}_T1w.nii.gz")["subject"].tolist() == ["a", "b"]


@pytest.mark.parametrize("pattern,problem", [
    ("data/t1.nii.gz", "exactly once"),
    ("data/{subject}/{subject}.nii.gz", "exactly once"),
    ("nowhere/{subject}.nii.gz", "no T1 matches"),
])
def test_bad_patterns_are_named(pattern, problem):
    with pytest.raises(ValueError, match=problem):
        find_subjects(pattern)


def test_labelled_subjects_are_split_and_unlabelled_ones_are_test(scans):
    found = find_subjects(f"{scans}/{{subject}}/anat/T1w.nii.gz", f"{scans}/{{subject}}/anat/labels.nii.gz")
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
