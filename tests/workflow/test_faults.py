"""Bad configurations and subject sheets stop a dry run before any job, naming what is wrong.

The row table of issue 8 (every bad input and fault, and the test of each) is the docstring of
tests/unit/test_faults.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BABY_CONFIG = ROOT / "tests/config/config.yaml"
pytestmark = pytest.mark.workflow


def dry_run(tmp_path: Path, config: dict) -> tuple[int, str]:
    """``snakemake -n`` with ``config`` in a fresh working directory; (exit status, output)."""
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"),
               "--directory", str(tmp_path / "run"), "--configfile", str(config_path),
               "--cores", "1", "-n"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    return result.returncode, result.stdout + result.stderr


def baby_config(**changes) -> dict:
    """The baby test config with ``changes`` (dotted key -> value) applied."""
    config = yaml.safe_load(BABY_CONFIG.read_text())
    config["subjects"] = str(ROOT / "tests/config/subjects.tsv")
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        block = config
        for parent in parents:
            block = block[parent]
        block[key] = value
    return config


def assert_no_job_ran(output: str, workdir: Path) -> None:
    assert "Job stats" not in output and "rule " not in output, output[-3000:]
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()


@pytest.mark.parametrize("key,value,problem", [
    ("train.steps", "ten", "'ten' is not of type 'integer'"),
    ("volume_size", 8, "8 is less than the minimum of 64"),
    ("models.meshnet.dropout", 1.5, "1.5 is greater than or equal to the maximum of 1"),
    ("compute.device", "gpu", "'gpu' is not one of ['auto', 'cpu', 'cuda']"),
], ids=["wrong-type", "below-minimum", "above-maximum", "not-an-allowed-value"])
def test_config_value_of_wrong_type_or_out_of_range_stops_before_any_job_naming_the_key(
        tmp_path, key, value, problem):
    status, output = dry_run(tmp_path, baby_config(**{key: value}))
    assert status != 0
    assert "Error validating config file" in output and problem in output, output[-3000:]
    instance = "".join(f"[{part!r}]" for part in key.split("."))
    assert f"On instance{instance}" in output, output[-3000:]
    assert_no_job_ran(output, tmp_path / "run")


@pytest.mark.parametrize("text,problem", [
    (None, "cannot read the subject sheet"),
    ("subject\tcohort\tsplit\n", "subject sheet has no subjects"),
    ("subject\tcohort\tsplit\nMNI152-demo-1\tMNI152-demo\ttrain\n"
     "MNI152-demo-1\tMNI152-demo\ttest\n", "subjects listed more than once: ['MNI152-demo-1']"),
], ids=["missing", "empty", "duplicated"])
def test_missing_empty_or_duplicated_subject_sheet_stops_before_any_job_naming_the_file(
        tmp_path, text, problem):
    sheet = tmp_path / "my_subjects.tsv"
    if text is not None:
        sheet.write_text(text)
    status, output = dry_run(tmp_path, baby_config(subjects=str(sheet)))
    assert status != 0
    assert f"{sheet}: {problem}" in output, output[-3000:]
    assert_no_job_ran(output, tmp_path / "run")
