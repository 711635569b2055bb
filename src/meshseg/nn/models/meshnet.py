"""MeshNet: a stack of dilated 3-D convolutions, no down-sampling.

References: Fedorov et al., "End-to-end learning of brain tissue segmentation from imperfect
labeling" (2017); Catalyst.Neuro ``neuro/model.py``; docs/references.md: MeshNet.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# The two published schedules. "small" (receptive field 37) is the Catalyst.Neuro 38^3 model,
# "large" (receptive field 67) its 71-channel model.
VARIANTS: dict[str, dict] = {
    "small": {"channels": 21, "dilations": (1, 1, 1, 2, 4, 8, 1)},
    "large": {"channels": 71, "dilations": (1, 1, 2, 4, 8, 16, 1)},
}


@dataclass
class MeshNetConfig:
    n_classes: int = 3
    channels: int = 21  # feature maps in every hidden layer
    dilations: tuple[int, ...] = (1, 1, 1, 2, 4, 8, 1)  # one 3x3x3 layer per entry
    dropout: float = 0.0  # Dropout3d after each hidden layer; > 0 is the "dropout" variant
    in_channels: int = 1  # one T1 image

    @classmethod
    def variant(cls, name: str, n_classes: int, dropout: float = 0.0) -> MeshNetConfig:
        if name not in VARIANTS:
            raise ValueError(f"unknown MeshNet variant {name!r}; choose from {sorted(VARIANTS)}")
        return cls(n_classes=n_classes, dropout=dropout, **VARIANTS[name])


class MeshNetLayer(nn.Sequential):
    """Conv3d(k=3, padding=dilation) -> BatchNorm3d -> ReLU -> Dropout3d."""

    def __init__(self, c_in: int, c_out: int, dilation: int, dropout: float) -> None:
        super().__init__(
            nn.Conv3d(c_in, c_out, kernel_size=3, padding=dilation, dilation=dilation),
            nn.BatchNorm3d(c_out),
            nn.ReLU(inplace=True),
            nn.Dropout3d(dropout),
        )


class MeshNet(nn.Module):
    """Maps (B, 1, D, H, W) intensities to (B, n_classes, D, H, W) logits, any D, H, W."""

    def __init__(self, config: MeshNetConfig) -> None:
        super().__init__()
        assert 0.0 <= config.dropout < 1.0, f"dropout must be in [0, 1), got {config.dropout}"
        self.config = config
        widths = [config.in_channels] + [config.channels] * len(config.dilations)
        layers = [
            MeshNetLayer(c_in, c_out, d, config.dropout)
            for c_in, c_out, d in zip(widths, widths[1:], config.dilations)
        ]
        self.layers = nn.Sequential(*layers)
        self.classifier = nn.Conv3d(config.channels, config.n_classes, kernel_size=1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Conv3d):
            nn.init.xavier_normal_(module.weight, gain=nn.init.calculate_gain("relu"))
            nn.init.zeros_(module.bias)

    @property
    def receptive_radius(self) -> int:
        """Voxels each output sees on either side: a dilated 3^3 layer adds its dilation."""
        return sum(self.config.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.layers(x))  # (B, C, D, H, W)
