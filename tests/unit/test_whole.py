import numpy as np
import pytest
import torch

from meshseg.image.grid import nonzero_box
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.whole import class_argmax, predict_layerwise, predict_whole, same_padding

CPU = Compute(torch.device("cpu"), None)


def head_in_air(shape=(40, 36, 30)) -> np.ndarray:
    """Random intensities in a box, zeros around it (like a padded, skull-stripped T1)."""
    image = np.zeros(shape, np.float32)
    image[9:31, 8:30, 6:22] = np.random.default_rng(0).random((22, 22, 16), dtype=np.float32)
    return image


def meshnet_with_statistics(n_classes=3):
    """MeshNet with non-trivial BatchNorm statistics, so that folding them is tested."""
    torch.manual_seed(0)
    model = build_model(model_config("meshnet", n_classes))
    for layer in model.layers:
        layer[1].running_mean.uniform_(-0.2, 0.2)
        layer[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def plain_pass(model, image: np.ndarray) -> np.ndarray:
    """The labels of ``model(image)``: one zero-padded pass over the whole volume."""
    with torch.inference_mode():
        return model(torch.from_numpy(image)[None, None]).argmax(1)[0].numpy()


@pytest.mark.parametrize("slab,classify", [(None, 8), (5, 2), (40, 8), (7, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_whole_volume_equals_one_plain_pass(slab, classify, channels_last):
    model, image = meshnet_with_statistics(), head_in_air()
    compute = Compute(torch.device("cpu"), None, channels_last=channels_last)
    got = predict_whole(model, image, compute, slab=slab, classify=classify)
    np.testing.assert_array_equal(got, plain_pass(model, image))


@pytest.mark.parametrize("slab", [None, 3])
def test_tissue_near_one_face_pads_that_face_only_and_labels_the_rest_as_empty(slab):
    """A box that reaches one face of each axis: each layer pads zeros on that side only;
    beyond R of the tissue, the label of an empty input."""
    model, image = meshnet_with_statistics(), np.zeros((64, 60, 56), np.float32)
    image[:10, 2:12, 40:56] = np.random.default_rng(1).random((10, 10, 16), dtype=np.float32)
    r, expected = model.receptive_radius, plain_pass(model, image)
    got = predict_whole(model, image, CPU, slab=slab)
    near = nonzero_box(image, r)
    np.testing.assert_array_equal(got[near], expected[near])
    with torch.inference_mode():
        empty = model(torch.zeros(1, 1, *(2 * r + 1,) * 3)).argmax(1)[0, r, r, r].item()
    outside = np.ones(image.shape, bool)
    outside[near] = False
    assert outside.any() and (got[outside] == empty).all()
    inner = outside.copy()
    inner[:r], inner[-r:], inner[:, :r], inner[:, -r:], inner[:, :, :r], inner[:, :, -r:] = (0,) * 6
    assert inner.any() and (expected[inner] == empty).all()  # the plain pass, away from faces


@pytest.mark.parametrize(
    "lo,hi,size,pads",
    [
        (0, 10, 10, [(1, 1), (2, 2)]),
        (4, 5, 10, [(0, 0), (0, 0)]),
        (1, 5, 10, [(1, 0), (1, 0)]),  # layer 1 reads 0:8 (no zero before), layer 2 -1:7
        (6, 9, 10, [(0, 1), (0, 1)]),  # layer 2 reads 4:11
    ],
)
def test_same_padding_pads_where_each_layer_reaches_a_face(lo, hi, size, pads):
    assert same_padding(lo, hi, size, [1, 2]) == pads


def test_an_empty_volume_gets_the_label_of_empty_input():
    model = meshnet_with_statistics()
    got = predict_whole(model, np.zeros((20, 20, 20), np.float32), CPU)
    with torch.inference_mode():
        empty = model(torch.zeros(1, 1, 41, 41, 41)).argmax(1)[0, 20, 20, 20].item()
    assert (got == empty).all()


def test_whole_volume_refuses_a_unet():
    with pytest.raises(ValueError, match="fully convolutional"):
        predict_whole(
            build_model(model_config("unet", 3, width=2)), np.zeros((8, 8, 8), np.float32), CPU
        )


def test_tissue_box():
    image = np.zeros((10, 10, 10), np.float32)
    image[3:5, 4:6, 5:7] = 1
    assert nonzero_box(image, 2) == (slice(1, 7), slice(2, 8), slice(3, 9))
    assert nonzero_box(np.zeros((4, 4, 4)), 1) is None


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d])
def test_class_argmax_ties_go_to_the_lower_index(memory_format):
    logits = torch.tensor([[1.0, 3, 3], [2, 2, 0], [0, 0, 0], [-1, 5, 4]])
    logits = logits.T.reshape(1, 3, 4, 1, 1).contiguous(memory_format=memory_format)
    assert class_argmax(logits).flatten().tolist() == [1, 0, 0, 1]
    random = torch.randn(2, 7, 3, 4, 5).contiguous(memory_format=memory_format)
    assert torch.equal(class_argmax(random), random.argmax(1))


def instance_norm_meshnet(activation="gelu_tanh"):
    """A MeshNet like brainchop's mindgrab: no bias, instance norm, tanh GELU (and one plain
    layer, so that per-layer norms are exercised)."""
    torch.manual_seed(0)
    spec = {
        **model_config("meshnet", 3),
        "channels": [3, 3, 4],  # the second layer overwrites its input
        "dilations": (1, 3, 2),
        "norm": ["instance", "none", "instance"],
        "activation": activation,
        "bias": False,
    }
    return build_model(spec).eval()


@pytest.mark.parametrize("slab", [16, 3, 1])
@pytest.mark.parametrize("activation", ["gelu_tanh", "relu"])
def test_instance_norm_whole_volume_equals_one_plain_forward(slab, activation):
    model = instance_norm_meshnet(activation)
    image = np.random.default_rng(0).random((21, 18, 15), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(image)[None, None]).argmax(1)[0].numpy()
    assert model.has_instance_norm
    np.testing.assert_array_equal(predict_layerwise(model, image, CPU, slab=slab), expected)
    np.testing.assert_array_equal(predict_whole(model, image, CPU), expected)
