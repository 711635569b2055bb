"""dataset: mindboggle101 end to end against a local server that speaks the OSF v2 API.

The archives hold demo subjects in the Mindboggle-101 layout (T1 + FreeSurfer-id labels), so
the whole chain runs: listing, download, extraction, split, conform, training, inference, tables.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from meshseg.demo import make_demo_subject
from tests.osf_server import archive_of, serve

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow
LAYOUT = {"MMRR-21": ["MMRR-21-1", "MMRR-21-2"], "NKI-TRT-20": ["NKI-TRT-20-1", "NKI-TRT-20-2"],
          "OASIS-TRT-20": ["OASIS-TRT-20-1"]}
FREESURFER_IDS = np.array([0, 1002, 2], np.int16)  # demo 0/1/2 -> background, ctx-lh-*, WM


def subject_files(index: int, folder: Path) -> dict[str, bytes]:
    """A demo subject as Mindboggle files: its T1 and its labels in FreeSurfer ids."""
    t1, labels = folder / f"{index}_t1.nii.gz", folder / f"{index}_labels.nii.gz"
    make_demo_subject(index, 7, t1, labels)
    img = nib.load(labels)
    ids = nib.Nifti1Image(FREESURFER_IDS[np.asarray(img.dataobj)].astype(np.float32), img.affine)
    return {"t1weighted.nii.gz": t1.read_bytes(),
            "labels.DKT31.manual+aseg.nii.gz": gzip.compress(ids.to_bytes())}  # float, as some are


@pytest.fixture(scope="module")
def osf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subjects")
    index = iter(range(1, 100))
    files = {f"{cohort}_volumes.tar.gz": archive_of(cohort, {s: subject_files(next(index), folder)
                                                             for s in subjects})
             for cohort, subjects in LAYOUT.items()}
    state, server = serve(files)
    yield state
    server.shutdown()
    server.server_close()


def test_mindboggle_from_osf_end_to_end(osf, tmp_path):
    config = yaml.safe_load((ROOT / "tests/config/config.yaml").read_text())
    config["dataset"] = "mindboggle101"
    config["mindboggle101"].update(api_url=osf.api_url, cohorts=["MMRR-21"], subjects=["NKI-TRT-20-1"],
                                   sheet=str(tmp_path / "sheet.tsv"),
                                   split={"train": 1, "validation": 1, "test": 1, "seed": 0})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    workdir = tmp_path / "run"
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "all"]
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    assert osf.downloads("MMRR-21_volumes.tar.gz") == 1 and osf.downloads("NKI-TRT-20_volumes.tar.gz") == 1
    assert osf.downloads("OASIS-TRT-20_volumes.tar.gz") == 0  # not chosen, never fetched
    sheet = pd.read_csv(tmp_path / "sheet.tsv", sep="\t")
    assert sorted(sheet["subject"]) == ["MMRR-21-1", "MMRR-21-2", "NKI-TRT-20-1"]
    assert sorted(sheet["split"]) == ["test", "train", "validation"]
    assert not (workdir / "resources/data/NKI-TRT-20_volumes/NKI-TRT-20-2").exists()  # not extracted
    manifest = pd.read_csv(workdir / "resources/data/manifest.tsv", sep="\t")
    assert sorted(manifest["file"]) == ["archives/MMRR-21_volumes.tar.gz", "archives/NKI-TRT-20_volumes.tar.gz"]
    comparison = pd.read_csv(workdir / "results/comparison.tsv", sep="\t")
    assert sorted(comparison["model"]) == ["meshnet", "unet"]
    assert comparison.drop(columns="foreground_dice_sd").notna().all().all()  # sd of 1 subject: NaN
    dice = pd.read_csv(workdir / "results/dice.tsv", sep="\t")
    assert set(dice["name"]) == {"Unknown", "GrayMatter-FSL-FAST", "WhiteMatter-FSL-FAST"}

    again = subprocess.run([*command, "-n"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
