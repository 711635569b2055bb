import numpy as np
import pandas as pd
import pytest
import torch

import meshseg.nn.training as training
from meshseg.labels import load_labelset
from meshseg.nn.checkpoint import load, load_checkpoint, save_checkpoint
from meshseg.nn.crops import TrainingData, Volume, load_volumes
from meshseg.nn.models import model_config
from meshseg.nn.training import train, train_files
from tests.conftest import everything_in, sphere_volume, train_config
from tests.kill import CHILD_PAUSE, start_and_kill

LABELSET = load_labelset("demo_gwm")
SPEC = model_config("meshnet", 3)


def volumes(n=2):
    return [Volume(f"v{i}", *sphere_volume(seed=i)) for i in range(n)]


def data(train=2, validation=1):
    return TrainingData(LABELSET, volumes(train), volumes(validation))


def test_checkpoint_describes_itself_and_curve_is_written(tmp_path):
    ckpt, curve = tmp_path / "m" / "checkpoint.pt", tmp_path / "m" / "curve.tsv"
    train(train_config(), SPEC, data(), ckpt, curve)
    state = load_checkpoint(ckpt)
    assert state["step"] == 6 and state["model_config"] == SPEC
    assert state["labelset"] == LABELSET.to_dict() and "optimizer" in state
    table = pd.read_csv(curve, sep="\t")
    assert list(table.columns) == ["step", "loss", "lr", "val_dice"]
    assert table["step"].tolist() == [3, 6] and table["val_dice"].between(0, 1).all()
    assert not (tmp_path / "m" / "checkpoint.pt.resume.pt").exists()
    loaded = load(ckpt)
    assert loaded.labelset == LABELSET and not loaded.model.training and loaded.patch == 16


def test_training_lowers_the_loss(tmp_path):
    cfg = train_config(steps=40, batch_size=4, validate_every=20, max_lr=0.01, checkpoint_every=100)
    train(cfg, SPEC, data(), tmp_path / "c.pt", tmp_path / "c.tsv")
    losses = pd.read_csv(tmp_path / "c.tsv", sep="\t")["loss"]
    assert losses.iloc[-1] < 0.7 * losses.iloc[0]


# checkpoint_every 2 does not divide validate_every 3: the step-6 curve row's mean loss spans
# the step-4 checkpoint, so the losses since the last row must be resumed too.
@pytest.mark.parametrize("checkpoint_every, resumed_from", [(3, 3), (2, 4)])
def test_killed_run_resumes_to_the_same_result(
    tmp_path, monkeypatch, checkpoint_every, resumed_from
):
    cfg = train_config(checkpoint_every=checkpoint_every)
    reference = tmp_path / "ref.pt"
    train(cfg, SPEC, data(), reference, tmp_path / "ref.tsv")

    calls = {"n": 0}
    real_batch = training.random_batch

    def dying_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # dies during step 5, after the last checkpoint
            raise KeyboardInterrupt
        return real_batch(*args, **kwargs)

    ckpt = tmp_path / "run.pt"
    monkeypatch.setattr(training, "random_batch", dying_batch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, SPEC, data(), ckpt, tmp_path / "run.tsv")
    assert not ckpt.exists() and load_checkpoint(str(ckpt) + ".resume.pt")["step"] == resumed_from
    monkeypatch.setattr(training, "random_batch", real_batch)
    train(cfg, SPEC, data(), ckpt, tmp_path / "run.tsv")

    resumed, expected = load_checkpoint(ckpt)["model"], load_checkpoint(reference)["model"]
    for name in expected:
        torch.testing.assert_close(resumed[name], expected[name], rtol=0, atol=0)
    assert pd.read_csv(tmp_path / "run.tsv", sep="\t").equals(
        pd.read_csv(tmp_path / "ref.tsv", sep="\t")
    )


def test_deterministic_kernels_follow_the_config_and_leave_cpu_results_alone(tmp_path):
    weights = {}
    for deterministic in (True, False):  # False last: later tests get PyTorch's default back
        ckpt = tmp_path / f"{deterministic}.pt"
        train(
            train_config(steps=2, deterministic=deterministic),
            SPEC,
            data(validation=0),
            ckpt,
            tmp_path / "c.tsv",
        )
        assert torch.are_deterministic_algorithms_enabled() is deterministic
        assert torch.backends.cudnn.deterministic is deterministic
        weights[deterministic] = load_checkpoint(ckpt)["model"]
    for name in weights[True]:
        torch.testing.assert_close(weights[True][name], weights[False][name], rtol=0, atol=0)


def test_resume_state_of_another_configuration_is_ignored(tmp_path):
    ckpt = tmp_path / "c.pt"
    train(
        train_config(steps=4, checkpoint_every=2),
        SPEC,
        data(validation=0),
        ckpt,
        tmp_path / "c.tsv",
    )
    (tmp_path / "c.pt.resume.pt").write_bytes(ckpt.read_bytes())  # a stale state
    train(
        train_config(steps=4, checkpoint_every=2, seed=1),
        SPEC,
        data(validation=0),
        ckpt,
        tmp_path / "c.tsv",
    )
    assert load_checkpoint(ckpt)["train_config"]["seed"] == 1


def test_train_files_reads_prepared_volumes(tmp_path, prepared_pair):
    image, labels, *_ = prepared_pair
    both = TrainingData.load("demo_gwm", [image], [labels], [image], [labels])
    train_files(
        train_config(steps=2),
        {"arch": "unet", "width": 2},
        both,
        tmp_path / "u.pt",
        tmp_path / "u.tsv",
    )
    assert load_checkpoint(tmp_path / "u.pt")["model_config"]["arch"] == "unet"


def test_no_training_subjects_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no training subjects"):
        train(train_config(), SPEC, data(0, 0), tmp_path / "c.pt", tmp_path / "c.tsv")


def test_labels_outside_the_set_name_the_file(tmp_path, prepared_pair):
    from meshseg.image.io import save_image

    image, _, _, labels = prepared_pair
    bad = tmp_path / "bad_labels.nii.gz"
    save_image(np.where(labels == 2, 9, labels).astype(np.uint8), np.diag([-1.0, 1, 1, 1]), bad)
    with pytest.raises(ValueError, match=r"bad_labels\.nii\.gz.*\{9:"):
        load_volumes([image], [bad], LABELSET)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("steps", 0, "steps must be >= 1"),
        ("patch", 0, "patch must be >= 1"),
        ("checkpoint_every", 0, "checkpoint_every must be >= 1"),
        ("sd", 0.0, "sd, max_lr > 0"),
        ("precision", "fp16", "unknown precision"),
        ("device", "tpu", "unknown device"),
    ],
)
def test_train_config_validates_itself(field, value, message):
    with pytest.raises(ValueError, match=message):
        train_config(**{field: value})


def test_resume_state_of_another_label_set_is_not_used(tmp_path, caplog):
    ckpt = tmp_path / "checkpoint.pt"
    other = load_labelset("gwm")  # 3 classes too, other ids: the same network would fit
    train(
        train_config(steps=3, checkpoint_every=100),
        SPEC,
        TrainingData(other, volumes(), []),
        ckpt,
        tmp_path / "curve.tsv",
    )
    stale = load_checkpoint(ckpt)
    save_checkpoint({**stale, "step": 2}, tmp_path / "checkpoint.pt.resume.pt")
    ckpt.unlink()
    with caplog.at_level("INFO", logger="meshseg.nn.training"):
        train(
            train_config(steps=3, checkpoint_every=100),
            SPEC,
            TrainingData(LABELSET, volumes(), []),
            ckpt,
            tmp_path / "curve.tsv",
        )
    assert "made with another configuration" in caplog.text and "resuming" not in caplog.text
    assert load_checkpoint(ckpt)["labelset"] == LABELSET.to_dict()


def test_kill_9_during_training_resumes_to_the_result_of_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    train(
        train_config(),
        SPEC,
        TrainingData(LABELSET, volumes(), volumes(1)),
        reference / "checkpoint.pt",
        reference / "curve.tsv",
    )
    run, marker = tmp_path / "run", tmp_path / "killed-here"
    start_and_kill(
        CHILD_PAUSE.format(marker=str(marker))
        + f"""
    import meshseg.nn.training as training
    from meshseg.nn.crops import TrainingData
    from tests.unit.test_training import LABELSET, SPEC, train_config, volumes
    calls, real_batch = [0], training.random_batch

    def batch_then_pause(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 5:  # in step 5, after the step-3 resumable checkpoint
            pause()
        return real_batch(*args, **kwargs)

    training.random_batch = batch_then_pause
    training.train(train_config(), SPEC, TrainingData(LABELSET, volumes(), volumes(1)),
                   {str(run / "checkpoint.pt")!r}, {str(run / "curve.tsv")!r})
    """,
        marker,
        tmp_path,
    )
    assert everything_in(run) == ["checkpoint.pt.resume.pt"]  # no final output, no temporary
    assert load_checkpoint(run / "checkpoint.pt.resume.pt")["step"] == 3

    train(
        train_config(),
        SPEC,
        TrainingData(LABELSET, volumes(), volumes(1)),
        run / "checkpoint.pt",
        run / "curve.tsv",
    )
    assert everything_in(run) == ["checkpoint.pt", "curve.tsv"]
    resumed, expected = (
        load_checkpoint(run / "checkpoint.pt"),
        load_checkpoint(reference / "checkpoint.pt"),
    )
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=0, atol=0)
    assert resumed["curve"] == expected["curve"]
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "curve.tsv", sep="\t"), pd.read_csv(reference / "curve.tsv", sep="\t")
    )
