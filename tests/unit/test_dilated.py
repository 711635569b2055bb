"""Dilated convolutions computed on the volume's phases (meshseg.nn.dilated): the same function
and gradients as ``F.conv3d``, on sizes that are and are not multiples of the dilation."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from meshseg.nn.dilated import MeshNetConv, PhaseConv, from_phases, to_phases
from meshseg.nn.models import build_model, model_config

CL = torch.channels_last_3d


@pytest.mark.parametrize("d", [2, 3, 4])
@pytest.mark.parametrize("size", [(8, 8, 8), (7, 5, 6)])
def test_phases_round_trip(d, size):
    x = torch.randn(2, 3, *size).contiguous(memory_format=CL)
    phases = to_phases(x, d)
    assert phases.shape[:2] == (d * d * 2, d * 3)
    assert torch.equal(from_phases(phases, d, list(size)), x)


@pytest.mark.parametrize("d", [2, 3, 4, 8])
@pytest.mark.parametrize("bias", [True, False])
def test_phase_convolution_has_the_gradients_of_the_dilated_one(d, bias):
    torch.manual_seed(d)
    x = torch.randn(1, 2, 7, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True) if bias else None
    expected = F.conv3d(x, w, b, padding=d, dilation=d)
    assert torch.allclose(PhaseConv.apply(x, w, b, d), expected)
    inputs = (x, w, b) if bias else (x, w)

    def phase_conv(x, w, b=None):
        return PhaseConv.apply(x, w, b, d)

    assert torch.autograd.gradcheck(phase_conv, inputs, fast_mode=True)


def bf16_training_pass(model, x, y):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    return logits.float(), {name: p.grad for name, p in model.named_parameters()}


def test_meshnet_trains_on_phases_in_bf16_with_the_same_outputs_and_gradients(monkeypatch):
    """MeshNet small's dilated layers (2, 4, 8) against plain nn.Conv3d with the same weights:
    the same logits and parameter gradients up to bf16 rounding, on a crop of 19^3."""
    torch.manual_seed(0)
    model = build_model(model_config("meshnet", 3)).train().to(memory_format=CL)
    plain = copy.deepcopy(model)
    for layer in plain.layers:
        layer[0].__class__ = torch.nn.Conv3d  # the same parameters, PyTorch's own forward
    x = torch.rand(2, 1, 19, 19, 19).contiguous(memory_format=CL)
    y = torch.randint(0, 3, (2, 19, 19, 19))
    calls, apply = [], PhaseConv.apply
    monkeypatch.setattr(PhaseConv, "apply", lambda *a: calls.append(a[-1]) or apply(*a))
    logits, grads = bf16_training_pass(model, x, y)
    assert calls == [2, 4, 8]  # every dilated layer, and only those, ran on phases
    plain_logits, plain_grads = bf16_training_pass(plain, x, y)
    assert (logits - plain_logits).abs().max() < 0.1 * plain_logits.abs().max()
    for name, grad in plain_grads.items():
        if name.startswith("layers.") and name.endswith(".0.bias"):
            continue  # a bias before BatchNorm has no effect: its gradient is rounding noise
        assert (grads[name] - grad).norm() <= 0.05 * grad.norm(), name


def test_meshnet_convolution_is_plain_outside_bf16_training():
    conv = MeshNetConv(2, 3, kernel_size=3, padding=4, dilation=4)
    x = torch.randn(1, 2, 9, 9, 9)
    expected = F.conv3d(x, conv.weight, conv.bias, padding=4, dilation=4)
    assert torch.equal(conv(x), expected)  # fp32 training
    conv.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(conv(x), F.conv3d(x, conv.weight, conv.bias, padding=4, dilation=4))
