"""dataset: mindboggle101 end to end against a local server that speaks the OSF v2 API.

The archives hold demo subjects in the Mindboggle-101 layout (T1 + FreeSurfer-id labels), so
the whole chain runs: listing, download, extraction, split, conform, training, inference, tables.
"""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from meshseg.data.demo import make_demo_subject
from tests.configs import config_args, snakemake_command
from tests.osf_server import archive_of, serve

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow
LAYOUT = {
    "MMRR-21": ["MMRR-21-1", "MMRR-21-2"],
    "NKI-TRT-20": ["NKI-TRT-20-1", "NKI-TRT-20-2"],
    "OASIS-TRT-20": ["OASIS-TRT-20-1"],
}
FREESURFER_IDS = np.array([0, 1002, 2], np.int16)  # demo 0/1/2 -> background, ctx-lh-*, WM


def subject_files(index: int, folder: Path) -> dict[str, bytes]:
    """A demo subject as Mindboggle files: its T1 and its labels in FreeSurfer ids."""
    t1, labels = folder / f"{index}_t1.nii.gz", folder / f"{index}_labels.nii.gz"
    make_demo_subject(index, 7, t1, labels)
    img = nib.load(labels)
    ids = nib.Nifti1Image(FREESURFER_IDS[np.asarray(img.dataobj)].astype(np.float32), img.affine)
    return {
        "t1weighted.nii.gz": t1.read_bytes(),
        "labels.DKT31.manual+aseg.nii.gz": gzip.compress(ids.to_bytes()),
    }  # float, as some are


@pytest.fixture(scope="module")
def osf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subjects")
    index = iter(range(1, 100))
    files = {
        f"{cohort}_volumes.tar.gz": archive_of(
            cohort, {s: subject_files(next(index), folder) for s in subjects}
        )
        for cohort, subjects in LAYOUT.items()
    }
    state, server = serve(files)
    yield state
    server.shutdown()
    server.server_close()


def write_config(osf, tmp_path: Path, **mindboggle) -> list[str]:
    """The baby config for dataset mindboggle101 from the local OSF server, with the sheet in
    ``tmp_path`` and the given ``mindboggle101`` keys; returns its ``--configfile`` arguments."""
    settings = {"api_url": osf.api_url, "sheet": str(tmp_path / "sheet.tsv"), **mindboggle}
    return config_args(
        tmp_path / "config.yaml", {"dataset": "mindboggle101", "mindboggle101": settings}
    )


def snakemake(config: list[str], workdir: Path, *args: str) -> str:
    """Run the workflow in ``workdir`` with ``config`` on 2 cores (``args``: targets and flags),
    check that it succeeded, and return its output."""
    command = snakemake_command(str(workdir), config, "--cores", "2", *args)
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result.stdout + result.stderr


def read_splits(sheet: Path) -> dict[str, str]:
    table = pd.read_csv(sheet, sep="\t")
    return dict(zip(table["subject"], table["split"]))


def test_mindboggle_from_osf_end_to_end(osf, tmp_path):
    config = write_config(
        osf,
        tmp_path,
        cohorts=["MMRR-21"],
        subjects=["NKI-TRT-20-1"],
        split={"train": 1, "validation": 1, "test": 1},
    )
    workdir = tmp_path / "run"
    snakemake(config, workdir, "all")

    assert (
        osf.downloads("MMRR-21_volumes.tar.gz") == 1
        and osf.downloads("NKI-TRT-20_volumes.tar.gz") == 1
    )
    assert osf.downloads("OASIS-TRT-20_volumes.tar.gz") == 0  # not chosen, never fetched
    sheet = pd.read_csv(tmp_path / "sheet.tsv", sep="\t")
    assert sorted(sheet["subject"]) == ["MMRR-21-1", "MMRR-21-2", "NKI-TRT-20-1"]
    assert sorted(sheet["split"]) == ["test", "train", "validation"]
    assert not (
        workdir / "resources/data/NKI-TRT-20_volumes/NKI-TRT-20-2"
    ).exists()  # not extracted
    manifest = pd.read_csv(workdir / "resources/data/manifest.tsv", sep="\t")
    assert sorted(manifest["file"]) == [
        "archives/MMRR-21_volumes.tar.gz",
        "archives/NKI-TRT-20_volumes.tar.gz",
    ]
    comparison = pd.read_csv(workdir / "results/comparison.tsv", sep="\t")
    assert sorted(comparison["model"]) == ["meshnet", "unet"]
    assert comparison.drop(columns="foreground_dice_sd").notna().all().all()  # sd of 1 subject: NaN
    dice = pd.read_csv(workdir / "results/dice.tsv", sep="\t")
    assert set(dice["name"]) == {"Unknown", "GrayMatter-FSL-FAST", "WhiteMatter-FSL-FAST"}

    assert "Nothing to be done" in snakemake(config, workdir, "all", "-n")


def test_sheet_follows_the_selection_and_keeps_hand_edits(osf, tmp_path):
    """Issue #14: widening the selection puts the new subject in the sheet and in
    results/dice.tsv, narrowing it drops one; a hand-edited split survives a rerun with the
    same selection, and its subjects keep their splits when the selection changes."""
    split = {"train": 1, "validation": 1, "test": 2}  # sizes 1/1/1 for 3 subjects, 1/1/2 for 4
    workdir, sheet_path = tmp_path / "run", tmp_path / "sheet.tsv"
    narrow = write_config(
        osf, tmp_path, cohorts=["MMRR-21"], subjects=["NKI-TRT-20-1"], split=split
    )
    snakemake(narrow, workdir, str(sheet_path))
    assert read_splits(sheet_path) == {
        "MMRR-21-1": "train",
        "MMRR-21-2": "test",
        "NKI-TRT-20-1": "validation",
    }

    # the user swaps the train and test subjects; a rerun with the same selection keeps that
    sheet = pd.read_csv(sheet_path, sep="\t")
    sheet["split"] = sheet["split"].replace({"train": "test", "test": "train"})
    sheet.to_csv(sheet_path, sep="\t", index=False)
    hand_made = sheet_path.read_text()
    snakemake(narrow, workdir, "results/subjects.tsv")
    assert sheet_path.read_text() == hand_made
    assert "Nothing to be done" in snakemake(narrow, workdir, str(sheet_path), "-n")

    # widen by a cohort: its one subject joins as a test subject (the sizes for 4 are 1/1/2),
    # the others keep their hand-chosen splits, and the new subject is evaluated
    downloads = osf.downloads("MMRR-21_volumes.tar.gz")
    wide = write_config(
        osf, tmp_path, cohorts=["MMRR-21", "OASIS-TRT-20"], subjects=["NKI-TRT-20-1"], split=split
    )
    snakemake(wide, workdir, "all")
    widened = {
        "MMRR-21-1": "test",
        "MMRR-21-2": "train",
        "NKI-TRT-20-1": "validation",
        "OASIS-TRT-20-1": "test",
    }
    assert read_splits(sheet_path) == widened
    assert osf.downloads("MMRR-21_volumes.tar.gz") == downloads  # already whole: not fetched again
    dice = pd.read_csv(workdir / "results/dice.tsv", sep="\t")
    assert set(dice["subject"]) == {"MMRR-21-1", "OASIS-TRT-20-1"}
    assert read_splits(workdir / "results/subjects.tsv") == widened
    assert "Nothing to be done" in snakemake(wide, workdir, "all", "-n")

    # narrow: the subject no longer chosen leaves the sheet, the others keep their splits
    narrower = write_config(
        osf, tmp_path, cohorts=["MMRR-21", "OASIS-TRT-20"], subjects=[], split=split
    )
    snakemake(narrower, workdir, str(sheet_path))
    assert read_splits(sheet_path) == {s: v for s, v in widened.items() if s != "NKI-TRT-20-1"}
