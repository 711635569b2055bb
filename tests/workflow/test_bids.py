"""dataset bids end to end: a BIDS dataset in, a BIDS-Derivatives dataset out.

Four demo T1w images stand in for a study (tests/bids_dataset.py: sub-01 with two sessions,
sub-02 with two runs, labels for all but sub-02's run 2), a small untrained MeshNet for a
trained checkpoint, 128^3 volumes for speed. First ``meshseg bids`` segments participant 01
only; then ``snakemake bids`` in the same working folder adds participant 02 and the labels,
reusing participant 01's segmentations.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

from meshseg.labels import load_labelset
from tests.bids_dataset import IMAGES, LABELS, anat, make_bids_dataset
from tests.configs import BABY, SUBJECT_JOBS, config_args, scheduled_jobs, snakemake_command
from tests.conftest import tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow
FAST = {"volume_size": 128}  # 64 subvolumes cover a volume instead of 343
TARGETS = ("bids", "results/dice.tsv")
SPACES = ("T1w", "conformed")


def run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


def snakemake(workdir: Path, *args: str) -> str:
    overrides = {
        **FAST,
        "dataset": "bids",
        "pretrained": {"meshnet": str(workdir / "meshnet.pt")},
        "bids": {
            "root": str(workdir / "bids"),
            "labels": str(workdir / "bids" / LABELS),
            "labelset": "demo_gwm",
        },
    }
    config = config_args(workdir / "config.yaml", overrides)
    return run(snakemake_command(workdir / "run", config, "--cores", "2", *args))


def segmented_units(output: str) -> set[str]:
    """The units of the segment_subject jobs that a snakemake run lists."""
    jobs = scheduled_jobs(output)
    return {re.search(r"subject=([^,]+)", w)[1] for rule, w in jobs if rule == "segment_subject"}


@pytest.fixture(scope="module")
def bids_run(tmp_path_factory):
    """(workdir, output of meshseg bids for participant 01, output of snakemake bids)."""
    workdir = tmp_path_factory.mktemp("bids")
    make_bids_dataset(workdir / "bids", demo=True)
    tiny_checkpoint(workdir / "meshnet.pt", overrides={"channels": 2})
    (workdir / "fast.yaml").write_text(yaml.safe_dump(FAST))
    app = [sys.executable, "-m", "meshseg.cli", "bids", str(workdir / "bids"), str(workdir / "app")]
    app += ["participant", "--participant-label", "01", "--model", str(workdir / "meshnet.pt")]
    app += ["-w", str(workdir / "run"), "--configfile", str(BABY), str(workdir / "fast.yaml")]
    cli_output = run([*app, "--cores", "2"])
    return workdir, cli_output, snakemake(workdir, *TARGETS)


def test_meshseg_bids_segments_only_the_chosen_participant(bids_run):
    workdir, cli_output, _ = bids_run
    assert segmented_units(cli_output) == {"sub-01_ses-1", "sub-01_ses-2"}
    app = workdir / "app"
    assert f"derivatives: {app}" in cli_output
    assert f"group volumes: {app / 'desc-meshnet_volumes.tsv'}" in cli_output
    assert sorted(p.name for p in app.glob("sub-*")) == ["sub-01"]
    table = pd.read_csv(app / "desc-meshnet_volumes.tsv", sep="\t")
    structures = [c.name for c in load_labelset("demo_gwm").classes[1:]]
    assert list(table.columns) == ["image", "participant_id", "session_id", *structures]
    assert table["image"].tolist() == ["sub-01_ses-1", "sub-01_ses-2"]
    assert (table[structures] > 0).all().all()


def test_the_second_run_reuses_the_first_ones_segmentations(bids_run):
    _, _, output = bids_run
    assert segmented_units(output) == {"sub-02_run-1", "sub-02_run-2"}


def test_pybids_finds_every_dseg_with_its_entities(bids_run):
    from bids import BIDSLayout

    out = bids_run[0] / "bids" / "derivatives" / "meshseg"
    layout = BIDSLayout(out, validate=False, is_derivative=True)
    found = {
        (
            f.entities["subject"],
            f.entities.get("session"),
            f.entities.get("run"),
            f.entities["space"],
        )
        for f in layout.get(suffix="dseg", desc="meshnet", extension=".nii.gz")
    }
    expected = (
        {("01", "1", None, space) for space in SPACES}
        | {("01", "2", None, space) for space in SPACES}
        | {("02", None, run, space) for run in (1, 2) for space in SPACES}
    )
    assert found == expected


def test_the_bids_validator_passes_the_output(bids_run):
    out = bids_run[0] / "bids" / "derivatives" / "meshseg"
    validator = Path(sys.executable).parent / "bids-validator-deno"
    result = subprocess.run(
        [str(validator), "--format", "json", str(out)], capture_output=True, text=True
    )
    report = json.loads(result.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert result.returncode == 0 and errors == [], errors
    assert sorted(report["summary"]["subjects"]) == ["01", "02"]


def test_the_dsegs_are_the_workflows_labels_on_each_grid(bids_run):
    workdir = bids_run[0]
    out = workdir / "bids" / "derivatives" / "meshseg"
    for unit in IMAGES:
        predictions = workdir / "run" / "results" / "predictions" / "meshnet" / unit
        for space, labels in zip(SPACES, ("labels_native.nii.gz", "labels.nii.gz")):
            dseg = anat(out, unit) / f"{unit}_space-{space}_desc-meshnet_dseg.nii.gz"
            assert dseg.read_bytes() == (predictions / labels).read_bytes()
            sidecar = json.loads(dseg.with_name(dseg.name.replace(".nii.gz", ".json")).read_text())
            assert sidecar["Sources"] == [f"bids:raw:{anat(Path(), unit)}/{unit}_T1w.nii.gz"]
        t1 = nib.load(anat(workdir / "bids", unit) / f"{unit}_T1w.nii.gz")
        native = nib.load(anat(out, unit) / f"{unit}_space-T1w_desc-meshnet_dseg.nii.gz")
        assert native.shape == t1.shape and np.allclose(native.affine, t1.affine)


def test_labelled_images_are_scored_and_the_others_only_measured(bids_run):
    workdir = bids_run[0]
    dice = pd.read_csv(workdir / "run" / "results" / "dice.tsv", sep="\t")
    assert sorted(set(dice["subject"])) == sorted(u for u, labelled in IMAGES.items() if labelled)
    group = pd.read_csv(
        workdir / "bids" / "derivatives" / "meshseg" / "desc-meshnet_volumes.tsv",
        sep="\t",
        keep_default_na=False,
    )
    assert group["image"].tolist() == list(IMAGES)
    assert group["session_id"].tolist() == ["ses-1", "ses-2", "n/a", "n/a"]


def test_touching_one_sessions_t1w_reruns_only_that_sessions_jobs(bids_run):
    workdir = bids_run[0]
    assert scheduled_jobs(snakemake(workdir, "-n", *TARGETS)) == set()
    t1 = anat(workdir / "bids", "sub-01_ses-2") / "sub-01_ses-2_T1w.nii.gz"
    assert t1.stat().st_size > 1_000_000  # smaller files would be checksummed, not timed
    later = t1.stat().st_mtime + 100
    os.utime(t1, (later, later))
    jobs = scheduled_jobs(snakemake(workdir, "-n", *TARGETS))
    summaries = {"bids_group_volumes", "summarise_results", "bids"}
    per_image = (SUBJECT_JOBS - {"dice_vs_subvolumes"}) | {"bids_dseg", "bids_volumes"}
    assert {rule for rule, _ in jobs} == per_image | summaries
    assert all("subject=sub-01_ses-2" in w for rule, w in jobs if rule not in summaries), jobs
