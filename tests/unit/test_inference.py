import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

import meshseg.image.io
from meshseg.image.intensity import qnormalise
from meshseg.labels import LabelClass, LabelSet, load_labelset
from meshseg.nn.checkpoint import LoadedModel, load, load_checkpoint, save_checkpoint
from meshseg.nn.inference import InferenceConfig, LabelFiles, predict_volume, segment_file
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.subvolumes import inference_locations
from meshseg.nn.vote import RULES
from meshseg.nn.whole import predict_whole
from tests.conftest import everything_in, fails_cleanly, tiny_checkpoint
from tests.kill import CHILD_HALF_WRITE, CHILD_PAUSE, start_and_kill

CPU = Compute(torch.device("cpu"), None)


def stand_in(model: torch.nn.Module, patch: int = 16) -> LoadedModel:
    """A handle on a stand-in network of the demo's 3 classes, cutting ``patch``^3 crops."""
    return LoadedModel(model, load_labelset("demo_gwm"), {}, patch)


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
    pred = predict_volume(stand_in(Threshold()), image, locations, 7, CPU, vote=vote)
    np.testing.assert_array_equal(pred, labels)


def test_each_vote_rule_gets_the_crops_softmax_in_any_crop_order():
    from tests.conftest import sphere_volume
    from tests.unit.test_vote import whole_volume_vote

    image, _ = sphere_volume(size=40)
    locations = inference_locations(60, 40, 16, 8, np.random.default_rng(0))  # grid, then Gaussian
    crops = torch.from_numpy(
        np.stack([image[a : a + 16, b : b + 16, c : c + 16] for a, b, c in locations])
    )
    with torch.inference_mode():
        probabilities = torch.softmax(Ramp()(crops[:, None]), 1).numpy()
    got = {}
    for vote in RULES:
        got[vote] = predict_volume(stand_in(Ramp()), image, locations, 7, CPU, vote=vote)
        expected, _ = whole_volume_vote(probabilities, locations, image.shape, vote)
        np.testing.assert_array_equal(got[vote], expected)
    assert (got["hard"] != got["hard-lowest"]).any() and (got["soft"] != got["hard"]).any()


def test_segment_file_writes_ids_lut_and_timing(tmp_path, prepared_pair):
    image_path, *_ = prepared_pair
    labelset = LabelSet(
        "fs",
        (
            LabelClass(0, 0, "Unknown", (0, 0, 0), (0,)),
            LabelClass(1, 3, "Left-Cerebral-Cortex", (205, 62, 78), (1,)),
            LabelClass(2, 2, "Left-Cerebral-White-Matter", (245, 245, 245), (2,)),
        ),
    )
    tiny_checkpoint(tmp_path / "c.pt", labelset=labelset, patch=16)
    out = tmp_path / "pred" / "labels.nii.gz"
    config = InferenceConfig(n_subvolumes=30, batch_size=8, precision="fp32", device="cpu")
    files = LabelFiles(out, tmp_path / "pred" / "lut.txt", tmp_path / "pred" / "inference.json")
    stats = segment_file(
        load(tmp_path / "c.pt", labelset), image_path, files, config, Compute.from_config(config)
    )
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
    loaded, cpu = stand_in(Threshold(), patch=40), torch.device("cpu")
    fp32 = predict_volume(loaded, image, locations, 1, Compute(cpu, None))
    bf16 = predict_volume(
        loaded, image, locations, 1, Compute(cpu, torch.bfloat16, channels_last=True)
    )
    assert (fp32 == bf16).mean() >= 0.999


def test_fused_network_gives_the_same_logits():
    from meshseg.nn.fusion import fuse_for_inference
    from tests.unit.test_whole import meshnet_with_statistics

    for model in (meshnet_with_statistics(), build_model(model_config("unet", 3, width=4)).eval()):
        x = torch.rand(2, 1, 24, 24, 24)
        with torch.inference_mode():
            torch.testing.assert_close(fuse_for_inference(model)(x), model(x), atol=1e-4, rtol=1e-4)
            fused = fuse_for_inference(model, channels_last=True)
            got = fused(x.contiguous(memory_format=torch.channels_last_3d))
            torch.testing.assert_close(got, model(x), atol=1e-4, rtol=1e-4)


def test_whole_mode_refuses_a_unet_before_reading_the_image(tmp_path):
    tiny_checkpoint(tmp_path / "u.pt", arch="unet", width=2)
    config = InferenceConfig(mode="whole", device="cpu")
    files = LabelFiles(tmp_path / "l.nii.gz", tmp_path / "lut.txt", tmp_path / "s.json")
    with pytest.raises(
        ValueError, match=r"u\.pt: whole-volume inference needs a fully convolutional"
    ):
        segment_file(load(tmp_path / "u.pt"), tmp_path / "missing.nii.gz", files, config, CPU)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mode", "slices", "unknown inference mode"),
        ("vote", "max", "unknown vote rule"),
        ("batch_size", 0, "batch_size must be >= 1"),
        ("n_subvolumes", 0, "n_subvolumes must be >= 1"),
        ("precision", "fp16", "unknown precision"),
        ("device", "tpu", "unknown device"),
        ("threads", 0, "threads must be >= 1"),
    ],
)
def test_inference_config_validates_itself(field, value, message):
    with pytest.raises(ValueError, match=message):
        InferenceConfig(**{field: value})


def segment(checkpoint: Path, image: Path, out: Path) -> dict:
    """The real segment_file on a prepared 48^3 volume, 30 16^3 subvolumes, fp32 on CPU."""
    config = InferenceConfig(
        n_subvolumes=30, batch_size=8, precision="fp32", device="cpu", channels_last=False
    )
    return segment_file(
        load(checkpoint),
        image,
        LabelFiles(out / "labels.nii.gz", out / "labels_lut.txt", out / "inference.json"),
        config,
        Compute.from_config(config),
    )


def test_corrupt_checkpoint_fails_segmentation_naming_the_file_and_writes_nothing(
    tmp_path, prepared_pair
):
    checkpoint = tiny_checkpoint(tmp_path / "checkpoint.pt", patch=16)
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    out = tmp_path / "pred"
    fails_cleanly(
        lambda: segment(checkpoint, prepared_pair[0], out),
        checkpoint,
        "not a readable checkpoint",
        out,
        error=ValueError,
    )


@pytest.mark.parametrize("stage", ["compute", "write"])
def test_kill_9_during_inference_leaves_no_output_and_the_rerun_completes(
    tmp_path, prepared_pair, stage
):
    image = prepared_pair[0]
    checkpoint = tiny_checkpoint(tmp_path / "checkpoint.pt", patch=16)
    out, marker = tmp_path / "pred", tmp_path / "killed-here"
    patch = (
        CHILD_HALF_WRITE
        if stage == "write"
        else """
    from meshseg.nn.models.meshnet import MeshNet
    MeshNet.forward = lambda self, x: pause()  # killed while predicting
    """
    )
    start_and_kill(
        CHILD_PAUSE.format(marker=str(marker))
        + patch
        + f"""
    from tests.unit.test_inference import segment
    segment(pathlib.Path({str(checkpoint)!r}), pathlib.Path({str(image)!r}),
            pathlib.Path({str(out)!r}))
    """,
        marker,
        tmp_path,
    )
    left = everything_in(out)
    assert "labels.nii.gz" not in left and "inference.json" not in left, left
    if stage == "write":  # killed half-way through the label map: only its temporary name
        assert (
            [p for p in left if p.startswith(".")]
            == [p for p in left if p.startswith(f".labels.nii.gz.part-{meshseg.image.io._HOST}-")]
            != []
        ), left

    stats = segment(checkpoint, image, out)
    assert everything_in(out) == [
        "inference.json",
        "labels.nii.gz",
        "labels_lut.txt",
    ]  # temp removed
    labels = nib.load(out / "labels.nii.gz")
    assert labels.shape == (48, 48, 48) and set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2}
    assert (
        json.loads((out / "inference.json").read_text())["subvolumes"] == stats["subvolumes"] == 30
    )


def with_preprocess(path, **preprocess):
    """The checkpoint at ``path`` with a ``preprocess`` record, as an imported one has."""
    state = load_checkpoint(path)
    save_checkpoint({**state, "preprocess": preprocess}, path)
    return path


def test_auto_mode_follows_the_checkpoints_preprocess_record(tmp_path, prepared_pair):
    image_path, _, image, _ = prepared_pair
    image = image.copy()
    image[2:5, 2:5, 2:5] = 0.9  # a bright stray blob, apart from the sphere
    meshseg.image.io.save_image(image, np.diag([-1.0, 1, 1, 1]), image_path)
    checkpoint = with_preprocess(
        tiny_checkpoint(tmp_path / "c.pt", seed=1, overrides={"channels": 4}),  # 4 pieces
        normalisation={"name": "qnormalize", "low": 0.02, "high": 0.98},
        largest_component=True,
        inference="whole",
    )
    loaded = load(checkpoint)
    config = InferenceConfig(mode="auto", precision="fp32", device="cpu")
    files = LabelFiles(tmp_path / "l.nii.gz", tmp_path / "lut.txt", tmp_path / "s.json")
    stats = segment_file(loaded, image_path, files, config, CPU)
    got = np.asarray(nib.load(files.labels).dataobj)
    raw = predict_whole(loaded.model, qnormalise(image), CPU)
    assert stats["mode"] == "whole" and stats["vote"] is None
    components, n = ndimage.label(got != 0, structure=np.ones((3, 3, 3)))
    assert n == 1 and (got == raw)[got != 0].all()
    assert ndimage.label(raw != 0, structure=np.ones((3, 3, 3)))[1] > 1  # something was cut
    plain = load(tiny_checkpoint(tmp_path / "d.pt", overrides={"channels": 2}, patch=16))
    config = InferenceConfig(mode="auto", n_subvolumes=30, precision="fp32", device="cpu")
    assert segment_file(plain, image_path, files, config, CPU)["mode"] == "vote"


def test_vote_refuses_instance_norm_and_records_refuse_unknown_settings(tmp_path):
    spec = {**model_config("meshnet", 3), "norm": "instance", "channels": 2}
    torch.manual_seed(0)
    state = {"model": build_model(spec).state_dict(), "model_config": spec, "step": 0}
    save_checkpoint({**state, "labelset": load_labelset("demo_gwm").to_dict()}, tmp_path / "i.pt")
    files = LabelFiles(tmp_path / "l.nii.gz", tmp_path / "lut.txt", tmp_path / "s.json")
    with pytest.raises(ValueError, match=r"i\.pt: instance norm uses whole-volume statistics"):
        segment_file(
            load(tmp_path / "i.pt"), tmp_path / "missing.nii.gz", files, InferenceConfig(), CPU
        )
    for record, problem in [
        ({"normalisation": {"name": "zscore"}}, "unknown normalisation"),
        ({"inference": "slices"}, "unknown inference mode 'slices'"),
    ]:
        with_preprocess(tmp_path / "i.pt", **record)
        with pytest.raises(ValueError, match=rf"i\.pt: {problem}"):
            load(tmp_path / "i.pt")
    assert everything_in(tmp_path) == ["i.pt"]
