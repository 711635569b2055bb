"""Shared fixtures: tiny synthetic volumes with known labels, written as real NIfTI files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from meshseg.image.io import ImageError, save_image


def sphere_volume(size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright sphere (class 2) in a darker shell (class 1): ``(image float32, labels uint8)``."""
    rng = np.random.default_rng(seed)
    grid = np.indices((size,) * 3) - (size - 1) / 2
    radius = np.sqrt((grid**2).sum(0))
    labels = np.zeros((size,) * 3, np.uint8)
    labels[radius < size * 0.4] = 1
    labels[radius < size * 0.25] = 2
    image = np.choose(labels, [0.0, 0.5, 0.9]).astype(np.float32)
    image += rng.normal(0, 0.03, image.shape).astype(np.float32) * (labels > 0)
    return np.clip(image, 0, 1), labels


@pytest.fixture
def prepared_pair(tmp_path):
    """Paths of a prepared image/label pair (48^3, 1 mm) and the arrays written."""
    image, labels = sphere_volume()
    affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    image_path, label_path = tmp_path / "t1.nii.gz", tmp_path / "labels.nii.gz"
    save_image(image, affine, image_path)
    save_image(labels, affine, label_path)
    return image_path, label_path, image, labels


def tiny_checkpoint(
    path,
    arch: str = "meshnet",
    labelset="demo_gwm",
    seed: int = 0,
    overrides: dict | None = None,
    patch: int = 38,
    **model_args,
):
    """Write an untrained checkpoint (small MeshNet, or U-Net with ``width=...``) to ``path``.

    ``labelset`` is a name or a LabelSet; ``overrides`` replaces fields of the model config,
    e.g. ``{"channels": 2}`` for speed; ``patch`` is the training crop it records.
    """
    import torch

    from meshseg.labels import LabelSet, load_labelset
    from meshseg.nn.checkpoint import save_checkpoint
    from meshseg.nn.models import build_model, model_config

    labels = labelset if isinstance(labelset, LabelSet) else load_labelset(labelset)
    spec = {**model_config(arch, labels.n_classes, **model_args), **(overrides or {})}
    torch.manual_seed(seed)
    save_checkpoint(
        {
            "model": build_model(spec).state_dict(),
            "model_config": spec,
            "labelset": labels.to_dict(),
            "step": 0,
            "train_config": {"patch": patch},
            "train": ["train-1", "train-2"],
        },
        path,
    )
    return path


def train_config(**overrides):
    """A TrainConfig for tests: 6 fp32 CPU steps of 2 crops of 16^3, checkpoints every 3."""
    from meshseg.nn.training import TrainConfig

    base = dict(
        steps=6,
        batch_size=2,
        patch=16,
        sd=12,
        validate_every=3,
        val_crops=2,
        checkpoint_every=3,
        precision="fp32",
        device="cpu",
        threads=1,
    )
    return TrainConfig(**{**base, **overrides})


def everything_in(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (hidden ones too), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def small_t1(path: Path, shape=(12, 12, 12), dtype=np.float32) -> Path:
    data = np.random.default_rng(0).uniform(0, 100, shape).astype(dtype)
    save_image(data, np.eye(4), path)
    return path


def fails_cleanly(call, path: Path, problem: str, out_dir: Path, error=ImageError) -> str:
    """``call()`` raises ``error`` naming ``path``, then ``problem``; ``out_dir`` stays empty."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message, message
    assert "\n" not in message
    assert everything_in(out_dir) == []
    return message
