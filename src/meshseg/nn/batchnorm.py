"""BatchNorm3d whose CPU backward on channels-last tensors runs on one thread when its
channel count would make PyTorch's threads share cache lines.

PyTorch's channels-last BatchNorm backward accumulates per-thread sums in one buffer of
``2 * C`` floats per thread; unless ``C`` is a multiple of 8 the threads' rows share cache
lines, and two threads take twice as long as one (Intel Xeon, 2 cores, MeshNet small's 21
channels, batch 16 x 38^3: 104 ms on two threads, 55 ms on one; 16 channels: 12 ms against
27 ms). Forward and backward are ``nn.BatchNorm3d``'s own; only the thread count around its
backward node changes.
"""

from __future__ import annotations

import torch
from torch import nn


def serial_backward(node: torch.autograd.graph.Node) -> None:
    """Run the autograd ``node`` on one intra-op thread and restore the count after it."""
    threads: list[int] = []

    def before(grad_outputs):
        threads.append(torch.get_num_threads())
        torch.set_num_threads(1)

    def after(grad_inputs, grad_outputs):
        torch.set_num_threads(threads.pop())

    node.register_prehook(before)
    node.register_hook(after)


class BatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d`` (same parameters, buffers and function); see the module docstring."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        collides = (
            self.training
            and y.grad_fn is not None
            and x.device.type == "cpu"
            and self.num_features % 8 != 0
            and torch.get_num_threads() > 1
            and x.is_contiguous(memory_format=torch.channels_last_3d)
        )
        if collides:
            serial_backward(y.grad_fn)
        return y
