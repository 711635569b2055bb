"""benchmarks/benchmark.py's training floor: the convolutions' FLOPs of one training step."""

import importlib.util
from pathlib import Path

from torch import nn

from meshseg.nn.models import build_model, model_config

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("benchmark", ROOT / "benchmarks" / "benchmark.py")
benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benchmark)


def test_training_flops_counts_forward_and_both_gradients_but_the_first_input_gradient():
    model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv3d(2, 3, 1))
    voxels = 4 * 5**3  # batch 4 of 5^3 crops
    first = 2 * (1 * 2 * 27) * voxels * 2  # forward + weight gradient
    second = 2 * (2 * 3 * 1) * voxels * 3  # forward + input and weight gradients
    assert benchmark.training_flops(model, batch=4, patch=5) == first + second


def test_meshnet_small_training_step_is_379_gflop():
    # 1 -> 21 channels, six 21 -> 21 layers of 3^3, a 21 -> 3 classifier; 16 crops of 38^3
    flops = benchmark.training_flops(build_model(model_config("meshnet", 3)))
    voxels = 16 * 38**3
    expected = 2 * voxels * (21 * 27 * 2 + 6 * 21 * 21 * 27 * 3 + 21 * 3 * 3)
    assert flops == expected
    assert round(flops / 1e9) == 379


def test_matmul_rate_is_a_positive_speed():
    assert benchmark.matmul_rate(None, size=64, repeats=2) > 0
