"""Bad configurations and subject sheets stop a dry run before any job, naming what is wrong.

The README's "When something goes wrong" lists every bad input and fault with its tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.bids_dataset import make_bids_dataset
from tests.configs import config_args, snakemake_command
from tests.conftest import everything_in, small_t1

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow


def dry_run(tmp_path: Path, **changes) -> tuple[int, str]:
    """``snakemake -n`` on the baby config with ``changes`` (dotted key -> value) in a fresh
    working directory; (exit status, output)."""
    overrides = {}
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        block = overrides
        for parent in parents:
            block = block.setdefault(parent, {})
        block[key] = value
    command = snakemake_command(
        str(tmp_path / "run"),
        config_args(tmp_path / "config.yaml", overrides),
        "--cores",
        "1",
        "-n",
    )
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    return result.returncode, result.stdout + result.stderr


def assert_no_job_ran(output: str, workdir: Path) -> None:
    assert "Job stats" not in output and "rule " not in output, output[-3000:]
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()


@pytest.mark.parametrize(
    "key,value,problem",
    [
        ("train.steps", "ten", "'ten' is not of type 'integer'"),
        ("volume_size", 8, "8 is less than the minimum of 64"),
        ("models.meshnet.dropout", 1.5, "1.5 is greater than or equal to the maximum of 1"),
        ("compute.device", "gpu", "'gpu' is not one of ['auto', 'cpu', 'cuda']"),
    ],
    ids=["wrong-type", "below-minimum", "above-maximum", "not-an-allowed-value"],
)
def test_config_value_of_wrong_type_or_out_of_range_stops_before_any_job_naming_the_key(
    tmp_path, key, value, problem
):
    status, output = dry_run(tmp_path, **{key: value})
    assert status != 0
    assert "Error validating config file" in output and problem in output, output[-3000:]
    instance = "".join(f"[{part!r}]" for part in key.split("."))
    assert f"On instance{instance}" in output, output[-3000:]
    assert_no_job_ran(output, tmp_path / "run")


@pytest.mark.parametrize(
    "text,problem",
    [
        (None, "cannot read the subject sheet"),
        ("subject\tcohort\tsplit\n", "subject sheet has no subjects"),
        (
            "subject\tcohort\tsplit\nMNI152-demo-1\tMNI152-demo\ttrain\n"
            "MNI152-demo-1\tMNI152-demo\ttest\n",
            "subjects listed more than once: ['MNI152-demo-1']",
        ),
    ],
    ids=["missing", "empty", "duplicated"],
)
def test_missing_empty_or_duplicated_subject_sheet_stops_before_any_job_naming_the_file(
    tmp_path, text, problem
):
    sheet = tmp_path / "my_subjects.tsv"
    if text is not None:
        sheet.write_text(text)
    status, output = dry_run(tmp_path, **{"demo.sheet": str(sheet)})
    assert status != 0
    assert f"{sheet}: {problem}" in output, output[-3000:]
    assert_no_job_ran(output, tmp_path / "run")


@pytest.mark.parametrize(
    "model,key,value,problem",
    [
        (
            "meshnet",
            "width",
            16,
            "'width' is not one of ['arch', 'variant', 'dropout', 'steps', 'inference']",
        ),
        (
            "unet",
            "variant",
            "large",
            "'variant' is not one of ['arch', 'width', 'steps', 'inference']",
        ),
        ("unet", "inference", "whole", "'vote' was expected"),
    ],
    ids=["width-on-meshnet", "variant-on-unet", "whole-volume-unet"],
)
def test_a_key_of_the_other_architecture_or_whole_volume_unet_stops_before_any_job(
    tmp_path, model, key, value, problem
):
    status, output = dry_run(tmp_path, **{f"models.{model}.{key}": value})
    assert status != 0
    assert "Error validating config file" in output and problem in output, output[-3000:]
    assert f"On instance['models'][{model!r}]" in output, output[-3000:]
    assert_no_job_ran(output, tmp_path / "run")


@pytest.mark.parametrize(
    "is_bids,subjects,problem",
    [
        (False, [], "not a BIDS dataset (no dataset_description.json)"),
        (True, ["03"], "no T1w image matches the filter subject=['03']"),
    ],
    ids=["not-bids", "filter-matches-nothing"],
)
def test_a_bids_root_that_is_not_bids_or_a_filter_that_matches_nothing_stops_before_any_job(
    tmp_path, is_bids, subjects, problem
):
    root = tmp_path / "study"
    if is_bids:
        make_bids_dataset(root)
    else:
        small_t1(root / "sub-01_T1w.nii.gz")
    before = everything_in(root)
    changes = {"dataset": "bids", "bids.root": str(root), "bids.subject": subjects}
    status, output = dry_run(tmp_path, **changes, pretrained={"meshnet": "meshnet.pt"})
    assert status != 0
    assert f"{root}: {problem}" in output, output[-3000:]
    assert_no_job_ran(output, tmp_path / "run")
    assert everything_in(root) == before


def test_a_model_name_that_is_no_bids_label_stops_before_any_job(tmp_path):
    root = make_bids_dataset(tmp_path / "study")
    changes = {"dataset": "bids", "bids.root": str(root)}
    status, output = dry_run(tmp_path, **changes, pretrained={"mesh_net": "meshnet.pt"})
    assert status != 0
    assert "model names ['mesh_net'] must be alphanumeric (BIDS desc labels)" in output, output
    assert_no_job_ran(output, tmp_path / "run")
