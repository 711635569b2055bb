"""Model registry: build a network from the plain dict stored in configs and checkpoints."""

from __future__ import annotations

from dataclasses import asdict

from torch import nn

from meshseg.nn.models.meshnet import MeshNet, MeshNetConfig
from meshseg.nn.models.unet import UNet, UNetConfig

ARCHITECTURES = ("meshnet", "unet")


def model_config(arch: str, n_classes: int, variant: str = "small", dropout: float = 0.0,
                 width: int = 64) -> dict:
    """The self-describing model spec: ``{"arch": ..., **dataclass fields}``."""
    if arch == "meshnet":
        return {"arch": arch, **asdict(MeshNetConfig.variant(variant, n_classes, dropout))}
    if arch == "unet":
        return {"arch": arch, **asdict(UNetConfig(n_classes=n_classes, width=width))}
    raise ValueError(f"unknown architecture {arch!r}; choose from {list(ARCHITECTURES)}")


def build_model(spec: dict) -> nn.Module:
    """Instantiate the network described by :func:`model_config`'s output."""
    fields = {k: v for k, v in spec.items() if k != "arch"}
    if spec.get("arch") == "meshnet":
        fields["dilations"] = tuple(fields["dilations"])
        return MeshNet(MeshNetConfig(**fields))
    if spec.get("arch") == "unet":
        return UNet(UNetConfig(**fields))
    raise ValueError(f"unknown architecture {spec.get('arch')!r}; choose from {list(ARCHITECTURES)}")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (weights, biases, BatchNorm affine; not running statistics)."""
    return sum(p.numel() for p in model.parameters())
