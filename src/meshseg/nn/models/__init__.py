"""Model registry: build a network from the plain dict stored in configs and checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from torch import nn

from meshseg.nn.models.meshnet import VARIANTS, MeshNet, MeshNetConfig
from meshseg.nn.models.unet import UNet, UNetConfig

ARCHITECTURES = ("meshnet", "unet")
NAMES = {"meshnet": "MeshNet", "unet": "U-Net"}
# MeshNet fields whose defaults make meshseg's own layers (Conv3d -> BatchNorm3d -> ReLU)
STANDARD = {"activation": "relu", "norm": "batch", "bias": True}


def model_config(
    arch: str, n_classes: int, variant: str = "small", dropout: float = 0.0, width: int = 64
) -> dict:
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
    raise ValueError(
        f"unknown architecture {spec.get('arch')!r}; choose from {list(ARCHITECTURES)}"
    )


def model_variant(spec: Mapping) -> str:
    """Which network of its architecture ``spec`` is, in words: ``small``/``large`` (``, dropout
    0.1`` when set) or ``custom (...)`` for a MeshNet, ``width N`` for a U-Net. ``spec`` is a
    model entry of the config (``variant``) or :func:`model_config`'s output (``channels``)."""
    if spec["arch"] == "unet":
        return f"width {spec.get('width', 64)}"
    if spec["arch"] != "meshnet":
        raise ValueError(
            f"unknown architecture {spec['arch']!r}; choose from {list(ARCHITECTURES)}"
        )
    name = (
        spec.get("variant", "small")
        if "channels" not in spec
        else next(
            (
                n
                for n, f in VARIANTS.items()
                if spec["channels"] == f["channels"]
                and tuple(spec["dilations"]) == f["dilations"]
                and all(spec.get(k, v) == v for k, v in STANDARD.items())
            ),
            None,
        )
    )
    if name is None:
        parts = [f"{spec['channels']} channels", f"dilations {list(spec['dilations'])}"]
        parts += [
            "no bias" if k == "bias" else f"{k} {spec[k]}"
            for k, default in STANDARD.items()
            if spec.get(k, default) != default
        ]
        return f"custom ({', '.join(parts)})"
    dropout = spec.get("dropout", 0.0)
    return name + (f", dropout {dropout:g}" if dropout else "")


def describe_model(spec: Mapping) -> str:
    """A model in words, e.g. ``MeshNet small`` or ``U-Net width 16`` (:func:`model_variant`)."""
    variant = model_variant(spec)
    return f"{NAMES[spec['arch']]} {variant}"


def is_fully_convolutional(model: nn.Module) -> bool:
    """Whether ``model``'s output is independent of how the volume is tiled: MeshNet, which
    has no pooling and so a receptive radius; not the U-Net."""
    return hasattr(model, "receptive_radius")


def require_fully_convolutional(model: nn.Module, what: str = "whole-volume inference") -> int:
    """The receptive radius of a fully convolutional ``model``; ``ValueError`` for any other."""
    if not is_fully_convolutional(model):
        raise ValueError(
            f"{what} needs a fully convolutional model (MeshNet), not {type(model).__name__}"
        )
    return model.receptive_radius


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (weights, biases, BatchNorm affine; not running statistics)."""
    return sum(p.numel() for p in model.parameters())
