import numpy as np
import pytest
import torch

from meshseg.labels import load_labelset
from meshseg.nn.checkpoint import (
    DEFAULT_PATCH,
    load,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
    weight_bytes,
)
from meshseg.nn.models import build_model, model_config
from tests.conftest import tiny_checkpoint


def test_round_trip(tmp_path):
    spec = model_config("meshnet", 3)
    model = build_model(spec)
    save_checkpoint(
        {
            "model": model.state_dict(),
            "model_config": spec,
            "labelset": load_labelset("demo_gwm").to_dict(),
            "step": 7,
        },
        tmp_path / "c.pt",
    )
    loaded = load(tmp_path / "c.pt")
    assert (
        loaded.info["step"] == 7
        and loaded.labelset.n_classes == 3
        and "meshseg_version" in loaded.info
    )
    assert "model" not in loaded.info and loaded.spec == spec and loaded.path == tmp_path / "c.pt"
    assert loaded.patch == DEFAULT_PATCH and not loaded.model.training  # no train_config: 38
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)
    # 72,516 parameters + BatchNorm running mean/var (7 x 2 x 21) in fp32, + 7 int64 counters
    assert weight_bytes(model) == (72_516 + 7 * 2 * 21) * 4 + 7 * 8
    assert loaded.parameters == 72_516 and loaded.weight_bytes == weight_bytes(model)


def test_patch_comes_from_the_train_config(tmp_path):
    spec = model_config("meshnet", 3)
    save_checkpoint(
        {
            "model": build_model(spec).state_dict(),
            "model_config": spec,
            "step": 0,
            "labelset": load_labelset("demo_gwm").to_dict(),
            "train_config": {"patch": 24},
        },
        tmp_path / "c.pt",
    )
    assert load(tmp_path / "c.pt").patch == 24


def test_truncated_checkpoint_names_the_file(tmp_path):
    spec = model_config("meshnet", 3)
    save_checkpoint(
        {"model": build_model(spec).state_dict(), "model_config": spec, "labelset": {}, "step": 0},
        tmp_path / "c.pt",
    )
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"c\.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "c.pt")


def test_foreign_pickle_and_wrong_architecture(tmp_path):
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: not a meshseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    save_checkpoint(
        {
            "model": build_model(model_config("unet", 3, width=2)).state_dict(),
            "model_config": model_config("meshnet", 3),
            "labelset": load_labelset("demo_gwm").to_dict(),
            "step": 0,
        },
        tmp_path / "x.pt",
    )
    with pytest.raises(ValueError, match=r"x\.pt: weights do not fit"):
        load(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_random_states_resume_the_training_gpus_generator(tmp_path, monkeypatch):
    """No GPU here: torch.cuda's generator functions are stand-ins that record their calls."""
    gpu_state, restored = torch.tensor([7, 1, 3], dtype=torch.uint8), []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: gpu_state.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append(state))
    cuda, cpu, rng = torch.device("cuda"), torch.device("cpu"), np.random.default_rng(0)
    save_checkpoint(
        {"model": {}, "model_config": {}, "labelset": {}, "step": 0, "rng": rng_state(rng, cuda)},
        tmp_path / "c.pt",
    )
    expected = rng.random(3), torch.rand(3)

    state = load_checkpoint(tmp_path / "c.pt")["rng"]
    restore_rng_state(state, rng, cuda)
    assert len(restored) == 1 and restored[0].tolist() == [7, 1, 3]
    np.testing.assert_array_equal(rng.random(3), expected[0])
    torch.testing.assert_close(torch.rand(3), expected[1], rtol=0, atol=0)

    restore_rng_state(state, rng, cpu)  # a GPU run resumed on the CPU: the CUDA state is unused
    restore_rng_state(rng_state(rng, cpu), rng, cuda)  # a CPU run resumed on a GPU
    assert "cuda" not in rng_state(rng, cpu) and len(restored) == 1


def test_checkpoint_of_another_architecture_fails_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(
        {
            "model": build_model(model_config("unet", 3, width=2)).state_dict(),
            "model_config": model_config("meshnet", 3),
            "labelset": load_labelset("demo_gwm").to_dict(),
            "step": 0,
        },
        path,
    )
    with pytest.raises(
        ValueError,
        match=rf"^{path}: weights do not fit the architecture "
        r"\{'arch': 'meshnet'",
    ):
        load(path)


def test_checkpoint_of_another_label_set_fails_naming_the_file(tmp_path):
    gwm = tiny_checkpoint(tmp_path / "gwm.pt", patch=16)
    dkt62 = load_labelset("dkt62")
    with pytest.raises(
        ValueError,
        match=rf"^{gwm}: trained for label set 'demo_gwm' \(3 classes\), "
        rf"not 'dkt62' \({dkt62.n_classes} classes\)$",
    ):
        load(gwm, dkt62)
    gwm_set = load_labelset("demo_gwm")
    assert load(gwm, gwm_set).labelset == gwm_set  # the right set passes
    # weights for 3 classes stored beside a label set of another size
    odd = tmp_path / "odd.pt"
    save_checkpoint({**load_checkpoint(gwm), "labelset": dkt62.to_dict()}, odd)
    with pytest.raises(
        ValueError,
        match=rf"^{odd}: the network predicts 3 classes but its label "
        rf"set 'dkt62' has {dkt62.n_classes}$",
    ):
        load(odd)
