"""meshseg.nn.batchnorm.BatchNorm3d: nn.BatchNorm3d's function, gradients and running
statistics, with its backward on one thread where that path is taken."""

from __future__ import annotations

import copy

import pytest
import torch

from meshseg.nn import batchnorm
from meshseg.nn.batchnorm import BatchNorm3d

CL = torch.channels_last_3d


@pytest.fixture
def two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_serial_backward_batchnorm_equals_pytorch(two_threads, monkeypatch, momentum):
    torch.manual_seed(0)
    ours = BatchNorm3d(21, momentum=momentum).train()
    with torch.no_grad():
        ours.weight.uniform_(0.5, 1.5)
        ours.bias.normal_()
    theirs = torch.nn.BatchNorm3d(21, momentum=momentum).train()
    theirs.load_state_dict(ours.state_dict())
    threads_inside, serial_backward = [], batchnorm.serial_backward

    def watched(node):  # the thread count while the node runs, after serial_backward's hook
        serial_backward(node)
        node.register_prehook(lambda grads: threads_inside.append(torch.get_num_threads()))

    monkeypatch.setattr(batchnorm, "serial_backward", watched)
    for _ in range(2):  # running statistics and num_batches_tracked follow step by step
        x = (torch.randn(2, 21, 6, 5, 4) * 3 + 1).contiguous(memory_format=CL)
        grad = torch.randn(2, 21, 6, 5, 4).contiguous(memory_format=CL)
        ours_x, theirs_x = x.clone().requires_grad_(), x.clone().requires_grad_()
        y = ours(ours_x)
        y.backward(grad)
        expected = theirs(theirs_x)
        expected.backward(grad)
        assert torch.get_num_threads() == 2
        assert torch.allclose(y, expected, atol=1e-5)
        assert torch.allclose(ours_x.grad, theirs_x.grad, atol=1e-5)
        assert torch.allclose(ours.weight.grad, theirs.weight.grad, atol=1e-4)
        assert torch.allclose(ours.bias.grad, theirs.bias.grad, atol=1e-4)
        for name, buffer in theirs.named_buffers():
            assert torch.allclose(dict(ours.named_buffers())[name], buffer), name
    assert threads_inside == [1, 1]


def test_batchnorm_takes_pytorchs_path_where_its_threads_do_not_collide(two_threads, monkeypatch):
    monkeypatch.setattr(batchnorm, "serial_backward", lambda node: pytest.fail("serial path"))
    x = torch.randn(2, 16, 4, 4, 4)
    BatchNorm3d(16).train()(x.contiguous(memory_format=CL))  # 16 channels: whole cache lines
    norm = BatchNorm3d(21)
    norm.train()(x.repeat(1, 2, 1, 1, 1)[:, :21])  # default memory format
    copy.deepcopy(norm).eval()(torch.randn(2, 21, 4, 4, 4).contiguous(memory_format=CL))
