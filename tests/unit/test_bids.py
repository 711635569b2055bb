"""dataset bids (meshseg.data.bids): T1w images as units, entity filters, labels by entities."""

from __future__ import annotations

import pytest
import yaml

from meshseg.data.bids import anat_dir, bids_table, find_t1w, match_labels, output_root
from meshseg.data.datasets import COLUMNS, resolve_dataset
from tests.bids_dataset import IMAGES, LABELS, anat, make_bids_dataset
from tests.conftest import everything_in, small_t1


@pytest.fixture
def root(tmp_path):
    return make_bids_dataset(tmp_path / "bids")


def settings(root, **changes) -> dict:
    """The shipped config's bids block on ``root`` and its labels dataset, with ``changes``."""
    with open("config/config.yaml") as file:
        block = yaml.safe_load(file)["bids"]
    return {**block, "root": str(root), "labels": str(root / LABELS), **changes}


def test_every_t1w_image_is_a_unit_named_by_its_entities(root):
    images = find_t1w(settings(root))
    assert images["unit"].tolist() == list(IMAGES)  # both sessions and both runs
    assert images["path"].tolist() == [str(anat(root, u) / f"{u}_T1w.nii.gz") for u in IMAGES]
    assert images["session"].fillna("").tolist() == ["1", "2", "", ""]
    assert images["run"].fillna("").tolist() == ["", "", "1", "2"]


def test_t1w_images_of_derivatives_and_sourcedata_are_not_units(root):
    for folder in ("derivatives/fmriprep", "sourcedata"):
        small_t1(root / folder / "sub-01" / "anat" / "sub-01_desc-preproc_T1w.nii.gz")
    assert find_t1w(settings(root))["unit"].tolist() == list(IMAGES)


@pytest.mark.parametrize(
    "changes,units",
    [
        ({"subject": ["01"]}, ["sub-01_ses-1", "sub-01_ses-2"]),
        ({"subject": ["sub-02"]}, ["sub-02_run-1", "sub-02_run-2"]),
        ({"session": ["2"]}, ["sub-01_ses-2"]),
        ({"run": [1]}, ["sub-02_run-1"]),
        ({"run": ["02"], "subject": ["01", "02"]}, ["sub-02_run-2"]),
    ],
    ids=["subject", "subject-with-prefix", "session", "run", "padded-run-and-subjects"],
)
def test_entity_filters_keep_only_the_matching_images(root, changes, units):
    assert find_t1w(settings(root, **changes))["unit"].tolist() == units


@pytest.mark.parametrize(
    "changes,problem",
    [
        ({"run": [3]}, "no T1w image matches the filter run=[3]"),
        (
            {"subject": ["01"], "acquisition": ["fast"]},
            "no T1w image matches the filter subject=['01'] acquisition=['fast']",
        ),
    ],
    ids=["run", "subject-and-acquisition"],
)
def test_a_filter_that_matches_nothing_is_one_line_naming_root_and_filter(root, changes, problem):
    before = everything_in(root)
    with pytest.raises(ValueError) as info:
        find_t1w(settings(root, **changes))
    assert str(info.value) == f"{root}: {problem}"
    assert everything_in(root) == before


def test_a_folder_that_is_not_bids_is_one_line_naming_it(tmp_path):
    small_t1(tmp_path / "scans" / "sub-01_T1w.nii.gz")
    before = everything_in(tmp_path)
    with pytest.raises(ValueError) as info:
        find_t1w(settings(tmp_path / "scans"))
    assert (
        str(info.value) == f"{tmp_path / 'scans'}: not a BIDS dataset (no dataset_description.json)"
    )
    assert everything_in(tmp_path) == before


def test_a_dataset_without_t1w_images_is_named(tmp_path):
    root = tmp_path / "bids"
    root.mkdir()
    (root / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.10.0"}')
    with pytest.raises(ValueError, match=rf"^{root}: no T1w image \(sub-<label>/"):
        find_t1w(settings(root))


def test_the_same_image_as_nii_and_nii_gz_is_refused(root):
    small_t1(anat(root, "sub-02_run-1") / "sub-02_run-1_T1w.nii")
    with pytest.raises(ValueError, match=r"T1w images \['sub-02_run-1'\] are there as both"):
        find_t1w(settings(root))


def test_a_broken_dataset_description_is_named(root):
    (root / "dataset_description.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"dataset_description.json: not valid JSON") as info:
        find_t1w(settings(root))
    assert str(info.value).startswith(str(root)) and "\n" not in str(info.value)


def test_labels_are_matched_by_entities_and_images_without_one_get_none(root):
    table = bids_table(settings(root), train=False)
    assert list(table.columns) == COLUMNS and table.index.tolist() == list(IMAGES)
    for unit, labelled in IMAGES.items():
        expected = anat(root / LABELS, unit) / f"{unit}_desc-tissue_dseg.nii.gz"
        assert table.loc[unit, "labels"] == (str(expected) if labelled else "")
    assert table["cohort"].tolist() == ["sub-01", "sub-01", "sub-02", "sub-02"]
    assert set(table["split"]) == {"test"}


def test_only_labels_on_the_t1w_grid_match_and_several_need_a_desc(root):
    unit = "sub-02_run-2"
    folder = anat(root / LABELS, unit)
    small_t1(folder / f"{unit}_space-MNI152NLin2009cAsym_desc-aseg_dseg.nii.gz")
    images = find_t1w(settings(root, run=[2]))
    assert match_labels(images, str(root / LABELS)) == [""]
    for name in (f"{unit}_space-T1w_desc-aseg_dseg.nii.gz", f"{unit}_desc-aparcaseg_dseg.nii.gz"):
        small_t1(folder / name)
    with pytest.raises(ValueError) as info:
        match_labels(images, str(root / LABELS))
    message = str(info.value)
    assert (
        message.startswith(f"{images.loc[0, 'path']}: several label files") and "\n" not in message
    )
    assert "choose one with bids.labels_desc" in message
    chosen = match_labels(images, str(root / LABELS), desc="aseg")
    assert chosen == [str(folder / f"{unit}_space-T1w_desc-aseg_dseg.nii.gz")]


def test_training_splits_labelled_participants_whole(root):
    table = bids_table(settings(root, split={"train": 1, "validation": 0, "test": 1}), train=True)
    labelled = table["labels"] != ""
    assert set(table.loc[labelled, "split"]) == {"train", "test"}
    assert table.loc[labelled].groupby("cohort")["split"].nunique().eq(1).all(), table
    assert table.loc["sub-02_run-2", "split"] == "test"  # no labels: segmented, never trained


def test_training_without_any_labels_is_refused(root):
    with pytest.raises(ValueError, match=f"^{root}: no T1w image has labels"):
        bids_table(settings(root, labels=""), train=True)


def test_the_resolver_reads_a_bids_dataset(root):
    with open("config/config.yaml") as file:
        config = {**yaml.safe_load(file), "dataset": "bids", "pretrained": {"m": "m.pt"}}
    config["bids"] = settings(root)
    table = resolve_dataset(config, {})
    assert table.index.tolist() == list(IMAGES) and list(table.columns) == COLUMNS


@pytest.mark.parametrize(
    "unit,folder",
    [
        ("sub-01", "sub-01/anat"),
        ("sub-01_ses-2_run-1", "sub-01/ses-2/anat"),
        ("sub-A1_acq-fast_run-02", "sub-A1/anat"),
    ],
)
def test_a_units_anat_folder(unit, folder):
    assert anat_dir(unit) == folder


def test_a_name_that_is_not_a_unit_is_refused():
    with pytest.raises(ValueError, match="'MNI152-demo-1' is not a BIDS unit name"):
        anat_dir("MNI152-demo-1")


def test_the_output_defaults_to_the_roots_derivatives(root):
    assert output_root(settings(root)) == str(root / "derivatives" / "meshseg")
    assert output_root(settings(root, output="/elsewhere")) == "/elsewhere"
