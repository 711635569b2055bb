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
activation, instead of stopping with an error. Where oneDNN has AMX, its bf16 kernels are
slow for a dilation of 8 or more when the input has an odd number of channels (bf16 AMX
multiplies channel pairs): 224 ms for 21 -> 21 channels at d = 8 where 20 -> 20 take 32
(64 x 160 x 160 voxels; 2110 ms at 71 channels). Those layers run undilated on the input's
phases (meshseg.nn.dilated) instead: 84 ms at 21 channels, 363 at 71, the same outputs.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from meshseg.nn import runtime
from meshseg.nn.dilated import from_phases, phase_weights, to_phases

# bf16 AMX convolutions of odd channel counts are faster on the phases from this dilation on
PHASE_DILATION = 8


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
            if self.runs_on_phases(x):
                return self.forward_on_phases(x, weight, bias)
            return self.pointwise(x, weight, bias, self.padding, list(c.dilation))
        y = F.conv3d(x, weight, bias, c.stride, self.padding, c.dilation, c.groups)
        if self.activation == "gelu":
            return F.gelu(y, approximate=self.approximate)
        return F.relu(y) if self.activation == "relu" else y

    def pointwise(
        self,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        padding: list[int],
        dilation: list[int],
    ) -> torch.Tensor:
        """oneDNN's convolution with this module's post-op (CPU); grouped when ``x`` has
        more channels than ``weight`` takes."""
        return torch.ops.mkldnn._convolution_pointwise(
            x,
            weight,
            bias,
            padding,
            list(self.conv.stride),
            dilation,
            x.shape[1] // weight.shape[1],
            self.activation,
            [],
            self.approximate if self.activation == "gelu" else "",
        )

    def runs_on_phases(self, x: torch.Tensor) -> bool:
        """Whether this convolution runs on ``x``'s phases: bf16 with oneDNN's AMX kernels,
        an odd number of input channels, a dense 3^3 convolution of stride 1, dilation at
        least :data:`PHASE_DILATION` on every axis and padding 0 or the dilation on each,
        channels-last input."""
        c = self.conv
        d = c.dilation[0]
        return (
            x.dtype == torch.bfloat16
            and x.shape[1] % 2 == 1
            and d >= PHASE_DILATION
            and c.dilation == (d, d, d)
            and c.kernel_size == (3, 3, 3)
            and c.stride == (1, 1, 1)
            and c.groups == 1
            and all(p in (0, d) for p in self.padding)
            and x.is_contiguous(memory_format=torch.channels_last_3d)
            and runtime.onednn_has_amx()
        )

    def forward_on_phases(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """The same convolution, undilated on ``x``'s phases with one group per phase of the
        last axis (meshseg.nn.dilated): padding ``d`` there is padding 1."""
        d = self.conv.dilation[0]
        weights, biases = phase_weights(weight, bias, d)
        weights = weights.contiguous(memory_format=torch.channels_last_3d)
        pads = [p // d for p in self.padding]
        y = self.pointwise(to_phases(x, d), weights, biases, pads, [1, 1, 1])
        size = [n + 2 * p - 2 * d for n, p in zip(x.shape[2:], self.padding)]
        return from_phases(y, d, size)


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
