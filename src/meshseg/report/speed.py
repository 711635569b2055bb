"""The reference-size models' size and speed on this run's device (results/reference_speed.tsv).

MeshNet small and large and the reference's 64-wide U-Net, untrained: their size comes from
the architecture, their subvolumes per second from the fused network that inference runs
(meshseg.nn.fusion), on the device, precision and memory layout of the run's Compute.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from meshseg.image.io import write_table
from meshseg.labels import load_labelset
from meshseg.nn.checkpoint import DEFAULT_PATCH, weight_bytes
from meshseg.nn.fusion import fuse_for_inference
from meshseg.nn.models import build_model, count_parameters, describe_model, model_config
from meshseg.nn.runtime import Compute

log = logging.getLogger(__name__)

REFERENCE_COLUMNS = [
    "model",
    "arch",
    "description",
    "n_classes",
    "parameters",
    "weight_bytes",
    "checkpoint_bytes",
    "subvolumes_per_second",
    "batch_size",
    "patch",
    "batches",
    "device",
]

# The reference-size models: MeshNet small and large, and the reference's 64-wide U-Net.
REFERENCE_MODELS = {
    "meshnet_small": {"arch": "meshnet", "variant": "small"},
    "meshnet_large": {"arch": "meshnet", "variant": "large"},
    "unet_64": {"arch": "unet", "width": 64},
}


def crops_per_second(
    model: torch.nn.Module, compute: Compute, batch_size: int, patch: int, batches: int
) -> float:
    """Subvolumes per second of ``model`` on random crops, after one warm-up batch, through
    inference's path: the fused network (meshseg.nn.fusion) on ``compute``, then the argmax."""
    net = fuse_for_inference(model.eval().to(compute.device), channels_last=compute.channels_last)
    x = compute.to_device(torch.rand(batch_size, 1, patch, patch, patch))
    with torch.inference_mode(), compute.autocast():
        net(x)  # warm-up: kernel selection, allocator
        _synchronize(compute.device)
        start = time.perf_counter()
        for _ in range(batches):
            net(x).argmax(1)
        _synchronize(compute.device)
    return batches * batch_size / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def checkpoint_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's state dict saved with torch.save (weights only)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pt"
        torch.save(model.state_dict(), path)
        return path.stat().st_size


def measure_reference_speed(
    labelset: str,
    out_path: str | os.PathLike,
    compute: Compute,
    batches: int,
    batch_size: int = 16,
    patch: int = DEFAULT_PATCH,
) -> pd.DataFrame:
    """Size and subvolumes/s of the untrained :data:`REFERENCE_MODELS`; write the table."""
    n_classes = load_labelset(labelset).n_classes
    rows = []
    for name, spec in REFERENCE_MODELS.items():
        torch.manual_seed(0)
        params = {k: v for k, v in spec.items() if k != "arch"}
        model = build_model(model_config(spec["arch"], n_classes, **params))
        rate = crops_per_second(model, compute, batch_size, patch, batches)
        log.info("%s: %.1f subvolumes/s on %s", name, rate, compute.describe())
        rows.append(
            {
                "model": name,
                "arch": spec["arch"],
                "description": describe_model(spec),
                "n_classes": n_classes,
                "parameters": count_parameters(model),
                "weight_bytes": weight_bytes(model),
                "checkpoint_bytes": checkpoint_bytes(model),
                "subvolumes_per_second": rate,
                "batch_size": batch_size,
                "patch": patch,
                "batches": batches,
                "device": compute.describe(),
            }
        )
    table = pd.DataFrame(rows, columns=REFERENCE_COLUMNS)
    write_table(table, out_path)
    return table
