"""dataset: folder with pretrained models: the `segment` target on the user's own T1s.

Two demo subjects stand in for a user's scans (oblique, anisotropic int16 T1s); one has a
label file, one has none. A small untrained MeshNet stands in for a trained checkpoint (the
Dice values are not the point here; the files, headers and tables are).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from meshseg.data.demo import make_demo_subject
from tests.configs import config_args, snakemake_command
from tests.conftest import tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow


def snakemake(workdir: Path, *args: str) -> str:
    overrides = {
        "dataset": "folder",
        "pretrained": {"meshnet": str(workdir / "meshnet.pt")},
        "folder": {
            "t1": str(workdir / "scans/{subject}/T1w.nii.gz"),
            "labels": str(workdir / "scans/{subject}/labels.nii.gz"),
            "labelset": "demo_gwm",
        },
    }
    command = snakemake_command(
        str(workdir), config_args(workdir / "config.yaml", overrides), "--cores", "2", *args
    )
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("folder")
    for index, subject in [(1, "sub-01"), (2, "sub-02")]:
        make_demo_subject(
            index,
            7,
            workdir / "scans" / subject / "T1w.nii.gz",
            workdir / "scans" / subject / "labels.nii.gz",
        )
    (workdir / "scans/sub-02/labels.nii.gz").unlink()
    tiny_checkpoint(workdir / "meshnet.pt")
    output = snakemake(workdir, "segment")
    return workdir, output


def test_nothing_is_trained_and_every_subject_is_segmented(folder_run):
    workdir, output = folder_run
    assert "train_model" not in output and not (workdir / "results/models").exists()
    for subject in ("sub-01", "sub-02"):
        assert (workdir / f"results/predictions/meshnet/{subject}/labels.nii.gz").is_file()


def test_native_labels_carry_the_input_header(folder_run):
    workdir, _ = folder_run
    for subject in ("sub-01", "sub-02"):
        t1 = nib.load(workdir / f"scans/{subject}/T1w.nii.gz")
        labels = nib.load(workdir / f"results/predictions/meshnet/{subject}/labels_native.nii.gz")
        assert labels.shape == t1.shape
        np.testing.assert_array_equal(labels.affine, t1.affine)
        np.testing.assert_array_equal(labels.header.get_zooms(), t1.header.get_zooms())
        assert labels.header["qform_code"] == t1.header["qform_code"]
        assert labels.header["sform_code"] == t1.header["sform_code"]
        assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2}


def test_subjects_without_labels_get_volumes_but_no_dice(folder_run):
    workdir, _ = folder_run
    volumes = pd.read_csv(workdir / "results/volumes.tsv", sep="\t")
    assert set(volumes["subject"]) == {"sub-01", "sub-02"}
    assert volumes.loc[volumes["subject"] == "sub-02", "true_mm3"].isna().all()
    assert volumes.loc[volumes["subject"] == "sub-01", "true_mm3"].gt(0).all()
    assert (volumes["name"] != "").all()
    dice = pd.read_csv(workdir / "results/dice.tsv", sep="\t")
    assert set(dice["subject"]) == {"sub-01"} and dice["native_dice"].notna().all()


def test_all_adds_the_experiment_for_labelled_subjects_only(folder_run):
    workdir, _ = folder_run
    output = snakemake(workdir, "all", "-n")
    assert "results/experiments/meshnet/sub-01.tsv" in output
    assert "results/experiments/meshnet/sub-02.tsv" not in output
