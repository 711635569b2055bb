"""Training-time dilated convolution as a dense one on the volume's phases.

oneDNN has no direct kernel for the weight gradient of a dilated 3-D convolution and falls
back to im2col + GEMM, about six times slower than for the same convolution undilated (Intel
Xeon with AMX, MeshNet small, bf16: 185 ms against 31 ms per layer and batch). A 3^3
convolution with dilation ``d`` and padding ``d`` is the same function as an undilated one,
padding 1, on each of the ``d^3`` phases ``x[..., i::d, j::d, k::d]`` (the "space to batch"
form of atrous convolution; docs/references.md). Here the phases of the first two axes become
batch entries and those of the last axis channel groups (a view of channels-last memory), so
the rearrangement copies runs of whole rows instead of single voxels.

Used for CPU training in bf16 only (:class:`MeshNetConv`); inference runs the fused path of
meshseg.nn.fusion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS_LAST = torch.channels_last_3d


def phase_pairs(rows: torch.Tensor, phases: torch.Tensor, d: int):
    """Each phase ``(i, j)`` of ``rows`` (B, D, H, W*C) beside its place in ``phases``
    (d, d, B, nD, nH, nW*d*C), whose padding is left out."""
    for i in range(d):
        for j in range(d):
            part = rows[:, i::d, j::d]
            yield part, phases[i, j, :, : part.shape[1], : part.shape[2], : part.shape[3]]


def to_phases(x: torch.Tensor, d: int) -> torch.Tensor:
    """(B, C, D, H, W) -> (d*d*B, d*C, nD, nH, nW), zero-padded to multiples of ``d``: batch
    entry ``(i*d + j)*B + b`` holds phase ``(i, j)`` of the first two axes, channel group
    ``k`` phase ``k`` of the last. Channels-last memory."""
    b, c, *size = x.shape
    n = [-(-s // d) for s in size]
    phases = x.new_zeros((d, d, b, n[0], n[1], n[2] * d * c))
    rows = x.permute(0, 2, 3, 4, 1).reshape(b, size[0], size[1], size[2] * c)
    for part, place in phase_pairs(rows, phases, d):
        place.copy_(part)
    return phases.view(d * d * b, *n, d * c).permute(0, 4, 1, 2, 3)


def from_phases(phases: torch.Tensor, d: int, size: list[int]) -> torch.Tensor:
    """The inverse of :func:`to_phases`, cropped to ``size`` (D, H, W); channels-last."""
    b = phases.shape[0] // (d * d)
    c = phases.shape[1] // d
    out = torch.empty(
        (b, c, *size), dtype=phases.dtype, device=phases.device, memory_format=CHANNELS_LAST
    )
    rows = out.permute(0, 2, 3, 4, 1).view(b, size[0], size[1], size[2] * c)
    phase_rows = phases.permute(0, 2, 3, 4, 1).reshape(d, d, b, *phases.shape[2:4], -1)
    for part, place in phase_pairs(rows, phase_rows, d):
        part.copy_(place)
    return out


def phase_weights(
    weight: torch.Tensor, bias: torch.Tensor | None, d: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``weight`` and ``bias`` once per channel group of :func:`to_phases`'s layout (one
    group per phase of the last axis), for the grouped convolution on the phases."""
    return weight.repeat(d, 1, 1, 1, 1), None if bias is None else bias.repeat(d)


class PhaseConv(torch.autograd.Function):
    """``F.conv3d(x, weight, bias, padding=d, dilation=d)`` for a 3^3 ``weight``, computed
    undilated on the phases of ``x`` (one grouped convolution with ``d`` groups)."""

    @staticmethod
    def forward(ctx, x, weight, bias, d):
        xp = to_phases(x, d)
        weights, biases = phase_weights(weight, bias, d)
        ctx.save_for_backward(xp, weights)
        ctx.d, ctx.size, ctx.has_bias = d, list(x.shape[2:]), bias is not None
        return from_phases(F.conv3d(xp, weights, biases, padding=1, groups=d), d, ctx.size)

    @staticmethod
    def backward(ctx, grad):
        xp, weights = ctx.saved_tensors
        d = ctx.d
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            to_phases(grad, d),
            xp,
            weights,
            [weights.shape[0]] if ctx.has_bias else None,
            stride=[1, 1, 1],
            padding=[1, 1, 1],
            dilation=[1, 1, 1],
            transposed=False,
            output_padding=[0, 0, 0],
            groups=d,
            output_mask=[True, True, ctx.has_bias],
        )
        grad_w = grad_w.view(d, -1, *grad_w.shape[1:]).sum(0)
        grad_b = grad_b.view(d, -1).sum(0) if ctx.has_bias else None
        return from_phases(grad_x, d, ctx.size), grad_w, grad_b, None


class MeshNetConv(nn.Conv3d):
    """A MeshNet layer's 3^3 convolution (padding = dilation): :class:`PhaseConv` when it
    trains in bf16 on the CPU with dilation > 1, ``nn.Conv3d`` otherwise (same parameters).

    In fp32 oneDNN's grouped kernels lose more in the forward pass and the input gradient than
    the undilated weight gradient gains (Intel Xeon, AVX-512: 468 ms against 408 ms per layer
    and batch at d = 4), so fp32 keeps the dilated convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dilation[0]
        training = self.training and torch.is_grad_enabled()
        autocast_bf16 = (
            torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        )
        if d == 1 or not training or x.device.type != "cpu" or not autocast_bf16:
            return super().forward(x)
        # the bf16 casts autocast gives a Conv3d's arguments, made here
        bias = None if self.bias is None else self.bias.bfloat16()
        with torch.autocast("cpu", enabled=False):
            return PhaseConv.apply(x.bfloat16(), self.weight.bfloat16(), bias, d)
