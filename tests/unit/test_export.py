import json

import numpy as np
import onnx
import pytest
import torch

from meshseg.image.io import load_volume
from meshseg.nn.checkpoint import load, load_checkpoint, save_checkpoint
from meshseg.nn.export import export_onnx, onnx_labels
from tests.conftest import tiny_checkpoint


@pytest.fixture(scope="module")
def prepared_t1(tmp_path_factory):
    """A prepared (conformed, padded, normalised) demo T1, as float32 256^3."""
    from meshseg.data.demo import make_demo_subject
    from meshseg.image.conform import conform_file
    from meshseg.image.preprocess import prepare_file

    folder = tmp_path_factory.mktemp("demo")
    make_demo_subject(1, 0, folder / "t1.nii.gz", folder / "labels.nii.gz")
    conform_file(folder / "t1.nii.gz", folder / "conformed.nii.gz", backend="python")
    prepare_file(folder / "conformed.nii.gz", folder / "prepared.nii.gz")
    return load_volume(folder / "prepared.nii.gz")[0].astype(np.float32)


def torch_labels(checkpoint, batch):
    model = load(checkpoint).model
    with torch.inference_mode():
        return model(torch.from_numpy(batch)).argmax(1).numpy()


def calibrated(checkpoint, batch):
    """Set the BatchNorm statistics to those of ``batch``: an untrained U-Net's logits are
    otherwise almost constant, and every voxel gets class 0."""
    model, state = load(checkpoint).model, load_checkpoint(checkpoint)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.from_numpy(batch))
    save_checkpoint({**state, "model": model.state_dict()}, checkpoint)
    return checkpoint


def agreement(checkpoint, onnx_path, batch):
    return (onnx_labels(onnx_path, batch) == torch_labels(checkpoint, batch)).mean()


# Equality is checked as >= 99.99 % of voxels, not exactly: onnxruntime and PyTorch sum the
# convolutions in different orders (differences ~1e-6), which can flip the argmax of a voxel
# whose two best logits are that close. On these inputs every voxel agreed when written.


def test_meshnet_labels_match_pytorch_on_any_size(tmp_path, prepared_t1):
    checkpoint = tiny_checkpoint(tmp_path / "meshnet.pt")
    out = export_onnx(load(checkpoint), tmp_path / "model" / "meshnet.onnx")
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["meshnet.onnx"]
    region = prepared_t1[80:176, 80:176, 80:176][None, None]  # 96^3 of the brain
    assert agreement(checkpoint, out, region) >= 0.9999
    crops = np.stack(
        [prepared_t1[100:138, 90:125, 110:150], prepared_t1[120:158, 130:165, 60:100]]
    )[:, None]
    assert agreement(checkpoint, out, crops) >= 0.9999


def test_unet_labels_match_pytorch_with_any_batch(tmp_path, prepared_t1):
    starts = [(90, 100, 110), (128, 128, 128), (100, 150, 80)]
    crops = np.stack([prepared_t1[a : a + 38, b : b + 38, c : c + 38] for a, b, c in starts])[
        :, None
    ]
    checkpoint = calibrated(tiny_checkpoint(tmp_path / "unet.pt", arch="unet", width=4), crops)
    out = export_onnx(load(checkpoint), tmp_path / "unet.onnx")
    assert agreement(checkpoint, out, crops) >= 0.9999
    assert agreement(checkpoint, out, prepared_t1[96:160, 96:160, 96:160][None, None]) >= 0.9999


def test_metadata_names_the_classes(tmp_path):
    out = export_onnx(load(tiny_checkpoint(tmp_path / "c.pt")), tmp_path / "c.onnx")
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert [c["name"] for c in json.loads(props["labelset"])["classes"]] == [
        "Unknown",
        "gray-matter",
        "white-matter",
    ]
    assert json.loads(props["model_config"])["arch"] == "meshnet"


def test_missing_or_broken_model_names_the_file(tmp_path):
    batch = np.zeros((1, 1, 8, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"none\.onnx: ONNX model not found"):
        onnx_labels(tmp_path / "none.onnx", batch)
    (tmp_path / "bad.onnx").write_text("garbage")
    with pytest.raises(ValueError, match=r"bad\.onnx: not a readable ONNX model"):
        onnx_labels(tmp_path / "bad.onnx", batch)
