"""A Dice floor on the baby DAG: training and inference that silently break fail it.

MeshNet small trains for 60 steps on one demo subject and segments a held-out one. On this
project's CPU that reaches foreground Dice 0.745 (GM 0.729, WM 0.763); the untrained or
3-step network of the other workflow tests scores about 0.2. Training is deterministic, so
the number moves only when the code (or the CPU's arithmetic) changes; the floor of 0.6 leaves
room for the second and catches a broken loss, optimizer, crop sampler, vote or label mapping.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.configs import config_args, snakemake_command

ROOT = Path(__file__).resolve().parents[2]
DICE_FLOOR = 0.6
pytestmark = pytest.mark.workflow


def test_trained_meshnet_segments_a_held_out_subject_above_the_dice_floor(tmp_path):
    overrides = {"train": {"steps": 60, "validate_every": 60, "checkpoint_every": 60}}
    metrics = "results/metrics/meshnet/MNI152-demo-3.tsv"
    command = snakemake_command(
        str(tmp_path), config_args(tmp_path / "overrides.yaml", overrides), "--cores", "2", metrics
    )
    run = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_csv(tmp_path / metrics, sep="\t")
    foreground = table.loc[table["class"] > 0, "dice"]
    assert foreground.mean() >= DICE_FLOOR, table
    assert table["native_dice"].loc[table["class"] > 0].mean() >= DICE_FLOOR, table
