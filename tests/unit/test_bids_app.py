"""``meshseg bids``: the config it builds, and the inputs it refuses before writing anything.

The run itself (the workflow's bids target) is tested in tests/workflow/test_bids.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from meshseg.cli import main
from meshseg.workflow import BidsRun, run_config
from tests.bids_dataset import make_bids_dataset
from tests.conftest import everything_in, small_t1, tiny_checkpoint


def bids_command(root: Path, tmp_path: Path, *args: str) -> list[str]:
    return [
        "bids",
        str(root),
        str(tmp_path / "out"),
        "participant",
        "--model",
        str(tmp_path / "meshnet.pt"),
        "-w",
        str(tmp_path / "work"),
        *args,
    ]


@pytest.mark.parametrize(
    "dataset,args,problem",
    [
        (False, [], "not a BIDS dataset (no dataset_description.json)"),
        (True, ["--participant-label", "03"], "no T1w image matches the filter subject=['03']"),
        (True, ["--participant-label", "sub-03"], "matches the filter subject=['sub-03']"),
    ],
    ids=["not-bids", "no-such-participant", "no-such-participant-with-prefix"],
)
def test_a_bad_dataset_or_filter_is_one_line_and_writes_nothing(
    tmp_path, capsys, dataset, args, problem
):
    root = make_bids_dataset(tmp_path / "bids") if dataset else tmp_path / "scans"
    if not dataset:
        small_t1(root / "sub-01_T1w.nii.gz")
    before = everything_in(tmp_path)
    assert main(bids_command(root, tmp_path, *args)) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"meshseg bids: error: {root}: ") and problem in error, error
    assert error.count("\n") == 1
    assert everything_in(tmp_path) == before  # no work folder, no output folder


def test_a_missing_checkpoint_is_named_before_anything_is_written(tmp_path, capsys):
    root = make_bids_dataset(tmp_path / "bids")
    before = everything_in(tmp_path)
    assert main(bids_command(root, tmp_path)) == 1
    assert capsys.readouterr().err == (
        f"meshseg bids: error: {tmp_path / 'meshnet.pt'}: checkpoint not found\n"
    )
    assert everything_in(tmp_path) == before


def test_the_config_names_the_dataset_participants_and_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_checkpoint(tmp_path / "meshnet.pt", labelset="demo_gwm")
    run = BidsRun(Path("bids"), Path("out"), Path("meshnet.pt"), Path("work"), ["01", "02"])
    config = run_config(run)
    assert config == {
        "dataset": "bids",
        "bids": {
            "root": str(tmp_path / "bids"),
            "output": str(tmp_path / "out"),
            "subject": ["01", "02"],
            "labelset": "demo_gwm",
        },
        "pretrained": {"meshnet": str(tmp_path / "meshnet.pt")},
    }
    tiny_checkpoint(tmp_path / "unet.pt", arch="unet", width=2)
    other = BidsRun(Path("bids"), Path("out"), Path("unet.pt"), Path("work"), labelset="gwm")
    config = run_config(other)
    assert config["pretrained"] == {"unet": str(tmp_path / "unet.pt")}
    assert config["bids"]["labelset"] == "gwm" and config["bids"]["subject"] == []
