import json

import nibabel as nib
import numpy as np
import pytest
import torch

from meshseg.labels import LabelClass, LabelSet
from meshseg.nn.checkpoint import save_checkpoint
from meshseg.nn.inference import InferenceConfig, predict_volume, segment_file
from meshseg.nn.models import build_model, model_config
from meshseg.nn.subvolumes import inference_locations
from meshseg.nn.vote import RULES


class Threshold(torch.nn.Module):
    """A stand-in network whose argmax is class 2 above 0.7, 1 above 0.3, else 0."""

    def forward(self, x):
        return torch.cat([0.3 - x, torch.minimum(x - 0.3, 0.7 - x), x - 0.7], dim=1)


class Ramp(torch.nn.Module):
    """A stand-in network whose logits also depend on the position in the crop, so that
    overlapping crops disagree."""

    def forward(self, x):
        ramp = torch.linspace(0, 1, x.shape[2]).view(1, 1, -1, 1, 1)
        return torch.cat([0.5 - x, x - ramp, ramp - 0.5 * x], dim=1)


@pytest.mark.parametrize("vote", RULES)
def test_vote_of_a_perfect_network_recovers_the_labels(vote):
    from tests.conftest import sphere_volume
    image, labels = sphere_volume(size=40)
    locations = inference_locations(40, 40, 16, 8, np.random.default_rng(0))
    pred = predict_volume(Threshold(), image, locations, 16, 3, batch_size=7,
                          device=torch.device("cpu"), dtype=None, channels_last=False, vote=vote)
    np.testing.assert_array_equal(pred, labels)


def test_each_vote_rule_gets_the_crops_softmax_in_any_crop_order():
    from tests.conftest import sphere_volume
    from tests.unit.test_vote import whole_volume_vote
    image, _ = sphere_volume(size=40)
    locations = inference_locations(60, 40, 16, 8, np.random.default_rng(0))  # grid, then Gaussian
    crops = torch.from_numpy(np.stack([image[a:a + 16, b:b + 16, c:c + 16] for a, b, c in locations]))
    with torch.inference_mode():
        probabilities = torch.softmax(Ramp()(crops[:, None]), 1).numpy()
    got = {}
    for vote in RULES:
        got[vote] = predict_volume(Ramp(), image, locations, 16, 3, batch_size=7, device=torch.device("cpu"),
                                   dtype=None, channels_last=False, vote=vote)
        expected, _ = whole_volume_vote(probabilities, locations, image.shape, vote)
        np.testing.assert_array_equal(got[vote], expected)
    assert (got["hard"] != got["hard-lowest"]).any() and (got["soft"] != got["hard"]).any()


def test_segment_file_writes_ids_lut_and_timing(tmp_path, prepared_pair):
    image_path, *_ = prepared_pair
    labelset = LabelSet("fs", (LabelClass(0, 0, "Unknown", (0, 0, 0), (0,)),
                              LabelClass(1, 3, "Left-Cerebral-Cortex", (205, 62, 78), (1,)),
                              LabelClass(2, 2, "Left-Cerebral-White-Matter", (245, 245, 245), (2,))))
    spec = model_config("meshnet", 3)
    torch.manual_seed(0)
    save_checkpoint({"model": build_model(spec).state_dict(), "model_config": spec,
                     "labelset": labelset.to_dict(), "step": 0}, tmp_path / "c.pt")
    out = tmp_path / "pred" / "labels.nii.gz"
    stats = segment_file(tmp_path / "c.pt", image_path, out, tmp_path / "pred" / "lut.txt",
                         tmp_path / "pred" / "inference.json",
                         InferenceConfig(n_subvolumes=30, batch_size=8, precision="fp32", device="cpu"),
                         patch=16)
    img = nib.load(out)
    assert img.shape == (48, 48, 48)
    np.testing.assert_allclose(img.affine, nib.load(image_path).affine)
    assert set(np.unique(np.asarray(img.dataobj))) <= {0, 2, 3}  # label ids, not class indices
    assert "Left-Cerebral-Cortex" in (tmp_path / "pred" / "lut.txt").read_text()
    saved = json.loads((tmp_path / "pred" / "inference.json").read_text())
    assert saved["subvolumes"] == 30 and saved["seconds"] > 0 and saved == pytest.approx(stats)
    assert saved["vote"] == "hard"


def test_bf16_and_fp32_labels_agree_on_a_trained_looking_network():
    from meshseg.nn.runtime import autocast_dtype
    if autocast_dtype(torch.device("cpu"), "auto") is None:
        pytest.skip("no native bf16 on this CPU")
    from tests.conftest import sphere_volume
    image, _ = sphere_volume(size=40)
    locations = np.zeros((1, 3), int)
    args = dict(patch=40, n_classes=3, batch_size=1, device=torch.device("cpu"))
    fp32 = predict_volume(Threshold(), image, locations, dtype=None, channels_last=False, **args)
    bf16 = predict_volume(Threshold(), image, locations, dtype=torch.bfloat16, channels_last=True, **args)
    assert (fp32 == bf16).mean() >= 0.999


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
    from meshseg.nn.inference import predict_whole
    model, image = meshnet_with_statistics(), head_in_air()
    radius = model.receptive_radius
    with torch.inference_mode():
        padded = torch.nn.functional.pad(torch.from_numpy(image)[None, None], (radius,) * 6)
        expected = model(padded).argmax(1)[0, radius:-radius, radius:-radius, radius:-radius].numpy()
    got = predict_whole(model, image, torch.device("cpu"), None, channels_last=False, slab=slab,
                        classify=classify)
    np.testing.assert_array_equal(got, expected)


def test_whole_volume_away_from_the_faces_equals_a_plain_single_pass():
    from meshseg.nn.inference import predict_whole
    model, image = meshnet_with_statistics(), head_in_air()
    with torch.inference_mode():
        expected = model(torch.from_numpy(image)[None, None]).argmax(1)[0].numpy()
    got = predict_whole(model, image, torch.device("cpu"), None, channels_last=True)
    r = model.receptive_radius
    inner = (slice(r, -r),) * 3
    assert (got[inner] == expected[inner]).all()  # near the faces the plain pass pads features


def test_an_empty_volume_gets_the_label_of_empty_input():
    from meshseg.nn.inference import predict_whole
    model = meshnet_with_statistics()
    got = predict_whole(model, np.zeros((20, 20, 20), np.float32), torch.device("cpu"), None, False)
    with torch.inference_mode():
        empty = model(torch.zeros(1, 1, 41, 41, 41)).argmax(1)[0, 20, 20, 20].item()
    assert (got == empty).all()


def test_fused_network_gives_the_same_logits():
    from meshseg.nn.fusion import fuse_for_inference
    for model in (meshnet_with_statistics(), build_model(model_config("unet", 3, width=4)).eval()):
        x = torch.rand(2, 1, 24, 24, 24)
        with torch.inference_mode():
            torch.testing.assert_close(fuse_for_inference(model)(x), model(x), atol=1e-4, rtol=1e-4)
            fused = fuse_for_inference(model, channels_last=True)
            got = fused(x.contiguous(memory_format=torch.channels_last_3d))
            torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)


def test_whole_volume_refuses_a_unet():
    from meshseg.nn.inference import predict_whole
    with pytest.raises(ValueError, match="fully convolutional"):
        predict_whole(build_model(model_config("unet", 3, width=2)), np.zeros((8, 8, 8), np.float32),
                      torch.device("cpu"), None, False)
