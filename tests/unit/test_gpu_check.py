"""benchmarks/gpu_check.sh without a GPU: a CPU smoke test that says what it skipped."""

import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the check runs for real")
def test_gpu_check_runs_on_the_cpu_and_names_what_it_skipped():
    done = subprocess.run(
        [ROOT / "benchmarks" / "gpu_check.sh", "--smoke"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "CUDA: no GPU visible. SKIPPED" in out
    assert "resume: stopped at step 3, resumed; weights equal: True" in out
    for network in ("MeshNet small", "MeshNet large", "U-Net width 64"):
        assert f"| {network} crops/s |" in out
