"""Device, threads and numeric precision for training and inference."""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")


def select_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is visible")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose from auto, cpu, cuda")
    return torch.device(name)


def set_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads, at most the CPUs this process may run on."""
    threads = max(1, min(threads, len(os.sched_getaffinity(0))))
    torch.set_num_threads(threads)
    return threads


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32.

    ``auto`` picks bf16 where the hardware computes it natively (CUDA with bf16 support;
    CPUs with AVX-512 BF16/AMX) and fp32 elsewhere, where emulated bf16 would be slower.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``dtype``, or a no-op context for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def describe(device: torch.device, dtype: torch.dtype | None) -> str:
    """A human-readable device name for tables, e.g. ``cpu (2 threads, bf16)``."""
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"cpu ({torch.get_num_threads()} threads)")
    return f"{where}, {'bf16' if dtype is torch.bfloat16 else 'fp32'}"
