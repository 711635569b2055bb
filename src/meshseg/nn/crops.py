"""Training data: prepared volumes held in memory and random 38^3 crops cut from them."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from meshseg.image.io import check_same_grid, load_volume
from meshseg.labels import LabelSet, load_labelset
from meshseg.nn.subvolumes import gaussian_locations

log = logging.getLogger(__name__)


@dataclass
class Volume:
    """One prepared subject: normalised intensities and class indices on the same grid."""

    name: str
    image: np.ndarray  # (D, H, W) float32 in [0, 1]
    classes: np.ndarray  # (D, H, W) uint8 class indices


def load_volumes(
    image_paths: Sequence[str | os.PathLike],
    label_paths: Sequence[str | os.PathLike],
    labelset: LabelSet,
) -> list[Volume]:
    """Read prepared image/label pairs; shapes and affines must match."""
    volumes = []
    for image_path, label_path in zip(image_paths, label_paths, strict=True):
        image, image_affine = load_volume(image_path)
        ids, label_affine = load_volume(label_path, labels=True)
        check_same_grid(label_path, ids.shape, label_affine, image_path, image.shape, image_affine)
        classes = labelset.to_classes(ids, source=str(label_path))
        volumes.append(Volume(str(image_path), image.astype(np.float32, copy=False), classes))
    log.info("loaded %d volumes", len(volumes))
    return volumes


@dataclass
class TrainingData:
    """The volumes a model trains and validates on, as class indices of ``labelset``."""

    labelset: LabelSet
    train: list[Volume]
    validation: list[Volume]

    @classmethod
    def load(
        cls,
        labelset: str,
        train_images: Sequence[str | os.PathLike],
        train_labels: Sequence[str | os.PathLike],
        val_images: Sequence[str | os.PathLike],
        val_labels: Sequence[str | os.PathLike],
    ) -> TrainingData:
        """Read the prepared pairs of both splits in the label set named ``labelset``."""
        labels = load_labelset(labelset)
        return cls(
            labels,
            load_volumes(train_images, train_labels, labels),
            load_volumes(val_images, val_labels, labels),
        )


def crop_batch(
    volumes: Sequence[Volume], picks: np.ndarray, locations: np.ndarray, patch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut crops ``volumes[picks[i]][locations[i] : locations[i] + patch]``.

    Returns ``x`` (B, 1, p, p, p) float32 and ``y`` (B, p, p, p) int64.
    """
    xs, ys = [], []
    for pick, (a, b, c) in zip(picks, locations):
        region = np.s_[a : a + patch, b : b + patch, c : c + patch]
        xs.append(volumes[pick].image[region])
        ys.append(volumes[pick].classes[region])
    x = torch.from_numpy(np.stack(xs)[:, None])
    y = torch.from_numpy(np.stack(ys).astype(np.int64))
    return x, y


def random_batch(
    volumes: Sequence[Volume], batch_size: int, patch: int, sd: float, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of crops from random volumes at truncated-Gaussian locations."""
    picks = rng.integers(len(volumes), size=batch_size)
    size = volumes[0].image.shape[0]
    locations = gaussian_locations(batch_size, size, patch, sd, rng)
    return crop_batch(volumes, picks, locations, patch)
