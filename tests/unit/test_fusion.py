"""FusedConv's dilated convolutions on the input's phases (bf16 with AMX, odd channels)."""

import numpy as np
import pytest
import torch
from torch import nn

from meshseg.nn import runtime
from meshseg.nn.fusion import FusedConv, fuse_for_inference
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.whole import predict_whole

CL = torch.channels_last_3d
native_bf16 = pytest.mark.skipif(
    not runtime.has_native_bf16(torch.device("cpu")), reason="no native bf16 on this CPU"
)


def fused(c_in: int, c_out: int, d: int, padding: list[int], **post_op) -> FusedConv:
    torch.manual_seed(d)
    conv = nn.Conv3d(c_in, c_out, 3, padding=d, dilation=d)
    return FusedConv(conv, padding, **post_op).eval()


@pytest.mark.parametrize("d", [2, 8, 16])
@pytest.mark.parametrize("padding", ["valid", "same", "same in H and W"])
@pytest.mark.parametrize("post_op", [{"activation": "relu"}, {"activation": "none"}])
def test_the_phases_give_the_dilated_convolution(d, padding, post_op):
    pads = {"valid": [0, 0, 0], "same": [d, d, d], "same in H and W": [0, d, d]}[padding]
    module = fused(5, 3, d, pads, **post_op)
    # sizes that are and are not multiples of d, each at least the kernel's reach
    x = torch.randn(2, 5, 2 * d + 3, 3 * d, 2 * d + 1).contiguous(memory_format=CL)
    weight, bias = module.weights(x)
    with torch.inference_mode():
        expected = module.pointwise(x, weight, bias, pads, [d, d, d])
        got = module.forward_on_phases(x, weight, bias)
    assert got.shape == expected.shape
    assert got.is_contiguous(memory_format=CL)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_only_bf16_odd_channel_dilations_of_8_or_more_with_amx_take_the_phases(monkeypatch):
    monkeypatch.setattr(runtime, "onednn_has_amx", lambda: True)
    x = torch.zeros(1, 21, 20, 20, 20, dtype=torch.bfloat16).contiguous(memory_format=CL)
    assert fused(21, 21, 8, [0, 8, 8]).runs_on_phases(x)
    assert fused(21, 21, 16, [16, 16, 16]).runs_on_phases(x)
    assert not fused(21, 21, 4, [4, 4, 4]).runs_on_phases(x)  # oneDNN is as fast there
    assert not fused(21, 21, 8, [3, 3, 3]).runs_on_phases(x)  # padding neither 0 nor d
    assert not fused(21, 21, 8, [8, 8, 8]).runs_on_phases(x.float())  # fp32 is fast
    assert not fused(21, 21, 8, [8, 8, 8]).runs_on_phases(x.contiguous())
    even = torch.zeros(1, 20, 20, 20, 20, dtype=torch.bfloat16).contiguous(memory_format=CL)
    assert not fused(20, 20, 8, [8, 8, 8]).runs_on_phases(even)  # even channels are fast
    monkeypatch.setattr(runtime, "onednn_has_amx", lambda: False)
    assert not fused(21, 21, 8, [8, 8, 8]).runs_on_phases(x)


@pytest.mark.parametrize(("limit", "allowed"), [("AVX2", False), ("AVX512_CORE_AMX", True)])
def test_amx_follows_onednns_instruction_set_limit(monkeypatch, limit, allowed):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", limit)
    runtime.onednn_has_amx.cache_clear()
    try:
        has_amx = torch.cpu._is_amx_tile_supported() and torch.cpu._init_amx()
        assert runtime.onednn_has_amx() == (allowed and has_amx)
    finally:
        runtime.onednn_has_amx.cache_clear()


@native_bf16
def test_meshnet_in_bf16_gives_the_same_labels_with_and_without_the_phases(monkeypatch):
    torch.manual_seed(0)
    model = build_model(model_config("meshnet", 3)).eval()  # its d = 8 layer has 21 channels
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 64), np.float32)
    image[8:56, 10:54, 12:52] = rng.random((48, 44, 40), dtype=np.float32)
    compute = Compute(torch.device("cpu"), torch.bfloat16, channels_last=True)
    calls = []
    forward_on_phases = FusedConv.forward_on_phases

    def counted(self, *args):
        calls.append(self.conv.dilation[0])
        return forward_on_phases(self, *args)

    monkeypatch.setattr(FusedConv, "forward_on_phases", counted)
    monkeypatch.setattr(runtime, "onednn_has_amx", lambda: True)
    phases = predict_whole(model, image, compute)
    x = torch.from_numpy(image[None, None, :40, :40, :40]).contiguous(memory_format=CL)
    with torch.inference_mode(), compute.autocast():
        logits_phases = fuse_for_inference(model, channels_last=True)(x)
    assert calls and set(calls) == {8}
    monkeypatch.setattr(runtime, "onednn_has_amx", lambda: False)
    calls.clear()
    direct = predict_whole(model, image, compute)
    with torch.inference_mode(), compute.autocast():
        logits_direct = fuse_for_inference(model, channels_last=True)(x)
    assert not calls
    assert (phases == direct).mean() >= 0.9999
    torch.testing.assert_close(logits_phases, logits_direct, atol=0.05, rtol=0.02)
