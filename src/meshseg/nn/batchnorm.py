"""BatchNorm3d whose CPU backward on channels-last tensors runs on one thread when its
channel count would make PyTorch's threads share cache lines.

PyTorch's channels-last BatchNorm backward accumulates per-thread sums in one buffer of
``2 * C`` floats per thread; unless ``C`` is a multiple of 8 the threads' rows share cache
lines, and two threads take twice as long as one (Intel Xeon, 2 cores, MeshNet small's 21
channels, batch 16 x 38^3: 104 ms on two threads, 55 ms on one; 16 channels: 12 ms against
27 ms). The forward pass and every other case are ``nn.BatchNorm3d``'s own.
"""

from __future__ import annotations

import torch
from torch import nn


class SerialBackwardBatchNorm(torch.autograd.Function):
    """Training-mode ``F.batch_norm`` with ``norm``'s running statistics (updated with
    ``momentum``) and eps, whose backward runs on one intra-op thread."""

    @staticmethod
    def forward(ctx, x, weight, bias, norm, momentum):
        y, mean, invstd = torch.ops.aten.native_batch_norm(
            x, weight, bias, norm.running_mean, norm.running_var, True, momentum, norm.eps
        )
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = norm.eps
        return y

    @staticmethod
    def backward(ctx, grad):
        x, weight, mean, invstd = ctx.saved_tensors
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
                grad, x, weight, None, None, mean, invstd, True, ctx.eps, [True, True, True]
            )
        finally:
            torch.set_num_threads(threads)
        return grad_x, grad_w, grad_b, None, None


class BatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` (same parameters, buffers and function); see the module docstring."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        serial = (
            self.training
            and torch.is_grad_enabled()
            and self.affine
            and self.track_running_stats
            and x.device.type == "cpu"
            and self.num_features % 8 != 0
            and torch.get_num_threads() > 1
            and x.is_contiguous(memory_format=torch.channels_last_3d)
        )
        if not serial:
            return super().forward(x)
        self.num_batches_tracked.add_(1)  # as nn.BatchNorm: momentum None is a running average
        momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return SerialBackwardBatchNorm.apply(x, self.weight, self.bias, self, momentum)
