import numpy as np
import pytest
import torch

from meshseg.image.grid import nonzero_box
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.whole import predict_layerwise, predict_whole, zero_padded_block

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


@pytest.mark.parametrize("slab,classify", [(None, 8), (5, 2), (40, 8), (7, 3)])
def test_whole_volume_equals_one_pass_over_the_zero_surrounded_volume(slab, classify):
    model, image = meshnet_with_statistics(), head_in_air()
    radius = model.receptive_radius
    with torch.inference_mode():
        padded = torch.nn.functional.pad(torch.from_numpy(image)[None, None], (radius,) * 6)
        expected = (
            model(padded).argmax(1)[0, radius:-radius, radius:-radius, radius:-radius].numpy()
        )
    got = predict_whole(model, image, CPU, slab=slab, classify=classify)
    np.testing.assert_array_equal(got, expected)


def test_whole_volume_away_from_the_faces_equals_a_plain_single_pass():
    model, image = meshnet_with_statistics(), head_in_air()
    with torch.inference_mode():
        expected = model(torch.from_numpy(image)[None, None]).argmax(1)[0].numpy()
    got = predict_whole(model, image, Compute(torch.device("cpu"), None, channels_last=True))
    r = model.receptive_radius
    inner = (slice(r, -r),) * 3
    assert (got[inner] == expected[inner]).all()  # near the faces the plain pass pads features


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


def test_tissue_box_and_zero_padded_block():
    image = np.zeros((10, 10, 10), np.float32)
    image[3:5, 4:6, 5:7] = 1
    box = nonzero_box(image, 2)
    assert box == (slice(1, 7), slice(2, 8), slice(3, 9))
    assert nonzero_box(np.zeros((4, 4, 4)), 1) is None
    block = zero_padded_block(image, (slice(0, 2), slice(0, 10), slice(0, 10)), 1)
    assert block.shape == (4, 12, 12) and not block.any()
    np.testing.assert_array_equal(zero_padded_block(image, box, 0), image[box])


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
