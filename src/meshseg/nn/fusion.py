"""Inference-only networks: BatchNorm folded into the convolution before it, the activation
fused in.

Each ``Conv3d -> BatchNorm3d -> ReLU`` of an ``nn.Sequential`` (every layer of meshseg's
MeshNets, every U-Net double convolution) becomes one :class:`FusedConv`. With eval-mode
BatchNorm this is the same function; on the CPU it runs as one oneDNN convolution with a ReLU
post-op, which saves two passes over every feature map (about a quarter of MeshNet's time on
this CPU); GELU (exact or tanh) is fused likewise. Every other Conv3d (a classifier, one
before ELU or instance norm) becomes a FusedConv without post-op: oneDNN's 1^3 convolution in
channels_last_3d takes 0.6x the time of ``F.conv3d``'s, and keeps that layout. ELU and
instance norm stay separate layers. oneDNN's fused kernel has no bf16 version on CPUs without
native bf16 (AVX2-only x86): there bf16 runs PyTorch's plain convolution, then the
activation, instead of stopping with an error.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from meshseg.nn import runtime


class FusedConv(nn.Module):
    """``activation(conv(x))`` of a convolution whose BatchNorm is already folded in:
    ``"relu"``, ``"gelu"`` (``approximate`` ``"none"`` or ``"tanh"``, as ``nn.GELU``) or
    ``"none"``.

    ``padding=0`` makes it a "valid" convolution (whole-volume inference); under autocast
    the input and weights are cast to the autocast dtype, as autocast does for Conv3d.
    """

    def __init__(
        self,
        conv: nn.Conv3d,
        padding: tuple[int, int, int] | None = None,
        activation: str = "relu",
        approximate: str = "none",
    ) -> None:
        super().__init__()
        assert activation in ("relu", "gelu", "none"), activation
        self.conv = conv
        self.padding = list(conv.padding if padding is None else padding)
        self.activation, self.approximate = activation, approximate
        self._weights: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def with_padding(self, padding: list[int]) -> FusedConv:
        """The same convolution and post-op with another ``padding``."""
        return FusedConv(self.conv, padding, self.activation, self.approximate)

    def weights(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias in ``like``'s dtype, device and memory format (cast once)."""
        fmt = (
            torch.channels_last_3d
            if like.is_contiguous(memory_format=torch.channels_last_3d) and not like.is_contiguous()
            else torch.contiguous_format
        )
        key = (like.dtype, like.device, fmt)
        if key not in self._weights:
            weight = (
                self.conv.weight.detach().to(like.device, like.dtype).contiguous(memory_format=fmt)
            )
            bias = self.conv.bias
            self._weights[key] = weight, None if bias is None else bias.detach().to(like)
        return self._weights[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        weight, bias = self.weights(x)
        c = self.conv
        if (
            x.device.type == "cpu"
            and torch.backends.mkldnn.is_available()
            and (x.dtype != torch.bfloat16 or runtime.has_native_bf16(x.device))
        ):
            return torch.ops.mkldnn._convolution_pointwise(
                x,
                weight,
                bias,
                self.padding,
                list(c.stride),
                list(c.dilation),
                c.groups,
                self.activation,
                [],
                self.approximate if self.activation == "gelu" else "",
            )
        y = F.conv3d(x, weight, bias, c.stride, self.padding, c.dilation, c.groups)
        if self.activation == "gelu":
            return F.gelu(y, approximate=self.approximate)
        return F.relu(y) if self.activation == "relu" else y


def fusable(activation: nn.Module) -> dict | None:
    """:class:`FusedConv`'s arguments for ``activation`` when oneDNN can fuse it (ReLU, GELU);
    None for any other (ELU)."""
    if isinstance(activation, nn.ReLU):
        return {"activation": "relu"}
    if isinstance(activation, nn.GELU):
        return {"activation": "gelu", "approximate": activation.approximate}
    return None


def fuse_for_inference(
    model: nn.Module, valid: bool = False, channels_last: bool = False
) -> nn.Module:
    """An eval-mode copy of ``model`` with every Conv3d -> BatchNorm3d -> ReLU (or GELU) fused.

    In every ``nn.Sequential``, a BatchNorm3d right after a Conv3d is folded into it; a ReLU
    or GELU after that convolution (or after a convolution without norm, ``nn.Identity``) is
    fused with it into a :class:`FusedConv`; every other Conv3d becomes one without post-op.
    Other layers (ELU, instance norm) run as they are.
    ``valid``: the convolutions pad nothing, so each shrinks its input by its dilation on
    every side (MeshNet's whole-volume inference reads that margin from the image).
    """
    fused = copy.deepcopy(model).eval()
    padding = (0, 0, 0) if valid else None
    for block in [m for m in fused.modules() if isinstance(m, nn.Sequential)]:
        for i, conv in enumerate(block):
            if not isinstance(conv, nn.Conv3d):
                continue
            norm, act = (block[j] if j < len(block) else None for j in (i + 1, i + 2))
            if isinstance(norm, nn.BatchNorm3d):
                conv, norm = fuse_conv_bn_eval(conv, norm), nn.Identity()
                block[i + 1] = norm
            post_op = fusable(act) if isinstance(norm, nn.Identity) else None
            block[i] = FusedConv(conv, padding, **(post_op or {"activation": "none"}))
            if post_op:
                block[i + 2] = nn.Identity()
    for parent in list(fused.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv3d) and not isinstance(parent, FusedConv):  # classifier
                setattr(parent, name, FusedConv(child, padding, activation="none"))
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last_3d)
    return fused
