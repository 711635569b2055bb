"""Device, threads and numeric precision for training and inference."""

from __future__ import annotations

import functools
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")


def select_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA when present, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is visible")
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose from {', '.join(DEVICES)}")
    return torch.device(name)


def set_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads, at most the CPUs this process may run on."""
    threads = max(1, min(threads, len(os.sched_getaffinity(0))))
    torch.set_num_threads(threads)
    return threads


def set_deterministic(enabled: bool) -> None:
    """Make training bit-reproducible on one machine and software stack (``enabled``), or let
    PyTorch pick its fastest kernels; the flags are process-wide.

    Sets cuBLAS's fixed workspace (``CUBLAS_WORKSPACE_CONFIG=:4096:8``, unless already set;
    read when cuBLAS starts, so call this before the first CUDA operation), deterministic
    cuDNN convolutions without autotuning, and ``torch.use_deterministic_algorithms`` with
    ``warn_only=True``: ops that have no deterministic CUDA kernel warn instead of stopping
    training. Here these are the U-Net's trilinear upsampling (backward) and the loss's NLL
    reduction, so a CUDA run is exact only as far as those allow; the CPU kernels meshseg
    uses are deterministic either way.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    # meshseg never reads memory it has not written: filling every new tensor would only
    # cost a pass over each activation of every training step.
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = False


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bf16 kernels: a CUDA GPU that supports bf16, or a CPU on which
    oneDNN computes bf16 (AVX-512 BW/VL/DQ or AVX-NE-CONVERT; AVX2-only x86 CPUs have none).
    The one place meshseg asks."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


@functools.cache
def onednn_has_amx() -> bool:
    """Whether oneDNN may run this CPU's AMX tile kernels: the CPU has them, the kernel lets
    this process use them (PyTorch asks it), and ``ONEDNN_MAX_CPU_ISA``, if set, allows them
    (it caps oneDNN's instruction set)."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    allowed = limit == "ALL" or "AMX" in limit
    return allowed and torch.cpu._is_amx_tile_supported() and torch.cpu._init_amx()


def cpu_isa() -> str:
    """The CPU's vector instruction set as PyTorch dispatches it, e.g. ``AVX-512, native bf16,
    no AMX``: what decides which of meshseg's speed paths pay off (benchmarks print it)."""
    capability = torch.backends.cpu.get_cpu_capability()  # DEFAULT, AVX2, AVX512, ZVECTOR...
    isa = {"AVX512": "AVX-512", "DEFAULT": "no AVX2"}.get(capability, capability)
    bf16 = "native bf16" if has_native_bf16(torch.device("cpu")) else "no native bf16"
    amx = "AMX" if onednn_has_amx() else "no AMX"  # as oneDNN may use it
    return f"{isa}, {bf16}, {amx}"


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``, or None for plain fp32.

    ``auto`` picks bf16 where the hardware has bf16 kernels (:func:`has_native_bf16`) and
    fp32 elsewhere, where emulated bf16 would be slower. ``bf16`` is obeyed even without
    them, with a warning: rather than stopping, the network then runs PyTorch's plain
    (emulated) bf16 convolutions, without the fused oneDNN ones (meshseg.nn.fusion).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if precision == "fp32":
        return None
    native = has_native_bf16(device)
    if precision == "bf16" and not native:
        need = "AVX-512 BW/VL/DQ or AVX-NE-CONVERT" if device.type == "cpu" else "bf16 support"
        log.warning(
            "compute.precision: bf16, but this %s lacks %s: bf16 is emulated (unfused "
            "convolutions), likely slower than fp32",
            device.type,
            need,
        )
    return torch.bfloat16 if precision == "bf16" or native else None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``dtype``, or a no-op context for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def describe(device: torch.device, dtype: torch.dtype | None) -> str:
    """A human-readable device name for tables, e.g. ``cpu (2 threads, bf16)``."""
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    return f"{where}, {'bf16' if dtype is torch.bfloat16 else 'fp32'}"


def check_settings(device: str, precision: str, threads: int) -> None:
    """Raise ValueError naming the value unless these compute settings are known (config
    dataclasses call it from ``__post_init__``)."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose from {list(DEVICES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")


class ComputeSettings(Protocol):
    """What :meth:`Compute.from_config` reads: TrainConfig and InferenceConfig have it."""

    device: str
    precision: str
    channels_last: bool
    threads: int


@dataclass(frozen=True)
class Compute:
    """Where and how networks run: the device, the autocast dtype (None: fp32), the
    channels_last_3d memory format and the intra-op CPU threads in use."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool = False
    threads: int = 1

    @classmethod
    def from_settings(
        cls,
        device: str = "auto",
        precision: str = "auto",
        channels_last: bool = True,
        threads: int = 1,
    ) -> Compute:
        """Select the device and precision and set the thread count (process-wide), once."""
        threads = set_threads(threads)
        where = select_device(device)
        return cls(where, autocast_dtype(where, precision), channels_last, threads)

    @classmethod
    def from_config(cls, config: ComputeSettings) -> Compute:
        """:meth:`from_settings` of a config dataclass's device, precision, layout and threads."""
        return cls.from_settings(
            config.device, config.precision, config.channels_last, config.threads
        )

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch`` on the device; a 5-D (B, C, D, H, W) batch in channels_last_3d when set."""
        x = batch.to(self.device, non_blocking=True)
        return (
            x.contiguous(memory_format=torch.channels_last_3d)
            if self.channels_last and x.ndim == 5
            else x
        )

    def autocast(self):
        """The autocast context of :attr:`dtype` (a no-op for fp32)."""
        return autocast(self.device, self.dtype)

    def describe(self) -> str:
        """:func:`describe` of this device and dtype."""
        return describe(self.device, self.dtype)
