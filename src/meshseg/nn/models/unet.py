"""The 3-D U-Net baseline of Catalyst.Neuro (a port of milesial/Pytorch-UNet).

Three 2x down-samplings, trilinear up-sampling with skip connections. With ``width=64`` it
has the reference's 25.1 M parameters (docs/references.md: U-Net); smaller widths keep the
shape and train on a CPU. Unlike the reference, each axis is padded by its own difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    n_classes: int = 3
    width: int = 64  # channels after the first double conv; 64 is the reference
    in_channels: int = 1


class DoubleConv(nn.Sequential):
    """(Conv3d k3 p1 -> BatchNorm3d -> ReLU) x 2."""

    def __init__(self, c_in: int, c_out: int, c_mid: int | None = None) -> None:
        c_mid = c_mid or c_out
        super().__init__(
            nn.Conv3d(c_in, c_mid, kernel_size=3, padding=1),
            nn.BatchNorm3d(c_mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(c_mid, c_out, kernel_size=3, padding=1),
            nn.BatchNorm3d(c_out),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """MaxPool3d(2) then DoubleConv."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.MaxPool3d(2), DoubleConv(c_in, c_out))


class Up(nn.Module):
    """Trilinear x2 up-sampling, pad to the skip tensor, concatenate, DoubleConv."""

    def __init__(self, c_in: int, c_out: int, c_mid: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=True)
        self.conv = DoubleConv(c_in, c_out, c_mid)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        diff = [s - n for s, n in zip(skip.shape[2:], x.shape[2:])]  # (dD, dH, dW)
        pad = []
        for d in reversed(diff):  # F.pad wants the last axis first
            pad += [d // 2, d - d // 2]
        x = F.pad(x, pad)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """Maps (B, 1, D, H, W) to (B, n_classes, D, H, W) logits."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        assert config.width >= 1, f"width must be >= 1, got {config.width}"
        self.config = config
        w = config.width
        self.inc = DoubleConv(config.in_channels, w)
        self.down1, self.down2, self.down3 = Down(w, 2 * w), Down(2 * w, 4 * w), Down(4 * w, 8 * w)
        # The reference's channel plan: (768 -> 256, mid 256), (384 -> 128, mid 256),
        # (192 -> 64, mid 64).
        self.up1 = Up(12 * w, 4 * w, 4 * w)
        self.up2 = Up(6 * w, 2 * w, 4 * w)
        self.up3 = Up(3 * w, w, w)
        self.outc = nn.Conv3d(w, config.n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)  # (B, w, D, H, W)
        x2 = self.down1(x1)  # (B, 2w, D/2, ...)
        x3 = self.down2(x2)  # (B, 4w, D/4, ...)
        x4 = self.down3(x3)  # (B, 8w, D/8, ...)
        x = self.up1(x4, x3)
        x = self.up2(x, x2)
        x = self.up3(x, x1)
        return self.outc(x)
