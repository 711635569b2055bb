"""MeshNet: a stack of dilated 3-D convolutions, no down-sampling.

meshseg's own networks (the ``small``/``large`` schedules, optionally with dropout) are
``Conv3d -> BatchNorm3d -> ReLU -> Dropout3d`` layers of one width. The same module also
expresses the MeshNets of other projects (brainchop's, imported by meshseg.nn.tfjs): a width
per layer, ELU or GELU activations, convolutions without bias, no normalisation or a
per-channel instance normalisation without weights.

References: Fedorov et al., "End-to-end learning of brain tissue segmentation from imperfect
labeling" (2017); Catalyst.Neuro ``neuro/model.py``; docs/references.md: MeshNet, brainchop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from meshseg.nn.batchnorm import BatchNorm3d
from meshseg.nn.dilated import MeshNetConv

# The two published schedules. "small" (receptive field 37) is the Catalyst.Neuro 38^3 model,
# "large" (receptive field 67) its 71-channel model.
VARIANTS: dict[str, dict] = {
    "small": {"channels": 21, "dilations": (1, 1, 1, 2, 4, 8, 1)},
    "large": {"channels": 71, "dilations": (1, 1, 2, 4, 8, 16, 1)},
}
ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),  # alpha 1, as Keras
    "gelu": nn.GELU,  # exact (erf)
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
}
INSTANCE_EPS = 1e-5  # instance norm: mean and biased variance over D, H, W; no weights
NORM_LAYERS = {
    "batch": BatchNorm3d,
    "instance": lambda c: nn.InstanceNorm3d(c, eps=INSTANCE_EPS, affine=False),
    "none": lambda c: nn.Identity(),
}
NORMS = tuple(NORM_LAYERS)


@dataclass
class MeshNetConfig:
    n_classes: int = 3
    # feature maps of every hidden layer, or one width per layer (imported networks)
    channels: int | list[int] = 21
    dilations: tuple[int, ...] = (1, 1, 1, 2, 4, 8, 1)  # one 3x3x3 layer per entry
    dropout: float = 0.0  # Dropout3d after each hidden layer; > 0 is the "dropout" variant
    in_channels: int = 1  # one T1 image
    activation: str = "relu"  # one of ACTIVATIONS, after every hidden layer
    norm: str | list[str] = "batch"  # one of NORMS, or one per layer
    bias: bool = True  # the hidden convolutions' bias (the classifier always has one)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown MeshNet activation {self.activation!r}; choose from {list(ACTIVATIONS)}"
            )
        unknown = sorted(set(self.per_layer("norm")) - set(NORMS))
        if unknown:
            raise ValueError(f"unknown MeshNet norm {unknown}; choose from {list(NORMS)}")
        self.per_layer("channels")

    @classmethod
    def variant(cls, name: str, n_classes: int, dropout: float = 0.0) -> MeshNetConfig:
        if name not in VARIANTS:
            raise ValueError(f"unknown MeshNet variant {name!r}; choose from {sorted(VARIANTS)}")
        return cls(n_classes=n_classes, dropout=dropout, **VARIANTS[name])

    def per_layer(self, name: str) -> list:
        """``channels`` or ``norm`` as one entry per layer."""
        value = getattr(self, name)
        if isinstance(value, (int, str)):
            return [value] * len(self.dilations)
        if len(value) != len(self.dilations):
            raise ValueError(
                f"MeshNet {name} has {len(value)} entries for {len(self.dilations)} layers"
            )
        return list(value)


class MeshNetLayer(nn.Sequential):
    """Conv3d(k=3, padding=dilation) -> norm -> activation -> Dropout3d."""

    def __init__(self, c_in: int, c_out: int, dilation: int, config: MeshNetConfig, norm: str):
        super().__init__(
            MeshNetConv(
                c_in, c_out, kernel_size=3, padding=dilation, dilation=dilation, bias=config.bias
            ),
            NORM_LAYERS[norm](c_out),
            ACTIVATIONS[config.activation](),
            nn.Dropout3d(config.dropout),
        )


class MeshNet(nn.Module):
    """Maps (B, 1, D, H, W) intensities to (B, n_classes, D, H, W) logits, any D, H, W."""

    def __init__(self, config: MeshNetConfig) -> None:
        super().__init__()
        assert 0.0 <= config.dropout < 1.0, f"dropout must be in [0, 1), got {config.dropout}"
        self.config = config
        widths = [config.in_channels] + config.per_layer("channels")
        layers = [
            MeshNetLayer(c_in, c_out, d, config, norm)
            for c_in, c_out, d, norm in zip(
                widths, widths[1:], config.dilations, config.per_layer("norm")
            )
        ]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Conv3d(widths[-1], config.n_classes, kernel_size=1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv3d):
            nn.init.xavier_normal_(module.weight, gain=nn.init.calculate_gain("relu"))
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    @property
    def receptive_radius(self) -> int:
        """Voxels each output sees on either side: a dilated 3^3 layer adds its dilation."""
        return sum(self.config.dilations)

    @property
    def has_instance_norm(self) -> bool:
        """Whether a layer normalises by whole-volume statistics (so crops change the result)."""
        return "instance" in self.config.per_layer("norm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x))  # (B, C, D, H, W)
