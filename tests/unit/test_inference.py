import json

import nibabel as nib
import numpy as np
import pytest
import torch

from meshseg.checkpoint import save_checkpoint
from meshseg.inference import InferenceConfig, predict_volume, segment_file
from meshseg.labels import LabelClass, LabelSet
from meshseg.models import build_model, model_config


class Threshold(torch.nn.Module):
    """A stand-in network whose argmax is class 2 above 0.7, 1 above 0.3, else 0."""

    def forward(self, x):
        return torch.cat([0.3 - x, torch.minimum(x - 0.3, 0.7 - x), x - 0.7], dim=1)


def test_vote_of_a_perfect_network_recovers_the_labels():
    from meshseg.subvolumes import inference_locations
    from tests.conftest import sphere_volume
    image, labels = sphere_volume(size=40)
    locations = inference_locations(40, 40, 16, 8, np.random.default_rng(0))
    pred = predict_volume(Threshold(), image, locations, 16, 3, batch_size=7,
                          device=torch.device("cpu"), dtype=None, channels_last=False)
    np.testing.assert_array_equal(pred, labels)


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


def test_bf16_and_fp32_labels_agree_on_a_trained_looking_network():
    from meshseg.runtime import autocast_dtype
    if autocast_dtype(torch.device("cpu"), "auto") is None:
        pytest.skip("no native bf16 on this CPU")
    from tests.conftest import sphere_volume
    image, _ = sphere_volume(size=40)
    locations = np.zeros((1, 3), int)
    args = dict(patch=40, n_classes=3, batch_size=1, device=torch.device("cpu"))
    fp32 = predict_volume(Threshold(), image, locations, dtype=None, channels_last=False, **args)
    bf16 = predict_volume(Threshold(), image, locations, dtype=torch.bfloat16, channels_last=True, **args)
    assert (fp32 == bf16).mean() >= 0.999


@pytest.mark.parametrize("slab,classify", [(5, 2), (40, 8), (7, 3)])
def test_whole_volume_in_slabs_equals_one_pass(slab, classify):
    from meshseg.inference import predict_whole
    torch.manual_seed(0)
    model = build_model(model_config("meshnet", 3)).eval()
    image = np.random.default_rng(0).random((40, 24, 20), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(image)[None, None]).argmax(1)[0].numpy()
    got = predict_whole(model, image, torch.device("cpu"), None, channels_last=False, slab=slab,
                        classify=classify)
    np.testing.assert_array_equal(got, expected)


def test_whole_volume_refuses_a_unet():
    from meshseg.inference import predict_whole
    with pytest.raises(ValueError, match="fully convolutional"):
        predict_whole(build_model(model_config("unet", 3, width=2)), np.zeros((8, 8, 8), np.float32),
                      torch.device("cpu"), None, False)
