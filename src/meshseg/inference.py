"""Segment a prepared volume: predict subvolumes in batches, then a per-voxel majority vote."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from meshseg import runtime
from meshseg.checkpoint import model_from_checkpoint
from meshseg.io import load_volume, save_image, write_text
from meshseg.labels import LabelSet
from meshseg.subvolumes import inference_locations
from meshseg.vote import VoteAggregator

log = logging.getLogger(__name__)


MODES = ("vote", "whole")


@dataclass
class InferenceConfig:
    mode: str = "vote"  # vote: subvolumes + majority vote; whole: one pass over the volume (MeshNet)
    n_subvolumes: int = 512  # grid (343 for 256^3 and 38^3) plus Gaussian crops up to this total
    sd: float = 64.0  # standard deviation of the Gaussian crop centres (voxels)
    batch_size: int = 16  # crops per forward pass
    seed: int = 0  # seeds the Gaussian crops (the same positions for every subject)
    precision: str = "auto"  # auto | fp32 | bf16
    channels_last: bool = True
    device: str = "auto"
    threads: int = 1


@torch.inference_mode()
def predict_crops(model: torch.nn.Module, image: np.ndarray, locations: np.ndarray, patch: int,
                  batch_size: int, device: torch.device, dtype: torch.dtype | None,
                  channels_last: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Class indices ``(B, p, p, p)`` (uint8) of the crops at ``locations``, batch by batch,
    each with its start corners ``(B, 3)``."""
    for start in range(0, len(locations), batch_size):
        chunk = locations[start:start + batch_size]
        x = np.stack([image[a:a + patch, b:b + patch, c:c + patch] for a, b, c in chunk])[:, None]
        x = torch.from_numpy(x).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with runtime.autocast(device, dtype):
            labels = model(x).argmax(1)  # (B, p, p, p)
        yield labels.to(torch.uint8).cpu().numpy(), chunk


def predict_volume(model: torch.nn.Module, image: np.ndarray, locations: np.ndarray, patch: int,
                   n_classes: int, batch_size: int, device: torch.device,
                   dtype: torch.dtype | None, channels_last: bool) -> np.ndarray:
    """Class index per voxel by majority vote of the crops at ``locations`` (start corners)."""
    votes = VoteAggregator(image.shape, n_classes)
    for labels, chunk in predict_crops(model, image, locations, patch, batch_size, device, dtype,
                                       channels_last):
        votes.add(labels, chunk)
    return votes.result()


@torch.inference_mode()
def predict_whole(model: torch.nn.Module, image: np.ndarray, device: torch.device,
                  dtype: torch.dtype | None, channels_last: bool, slab: int = 128,
                  classify: int = 8) -> np.ndarray:
    """Class index per voxel from one fully convolutional pass, ``slab`` slices at a time.

    Each slab's features are computed with ``model.receptive_radius`` extra slices on both
    sides, so the labels equal those of a single pass over the whole volume; the classifier
    then runs ``classify`` slices at a time, so only that many slices of logits are ever held
    (about 220 MB at 104 classes and 256^2). Needs MeshNet's ``layers`` / ``classifier`` split;
    a U-Net's pooling makes its output depend on the tiling.
    """
    halo = getattr(model, "receptive_radius", None)
    if halo is None:
        raise ValueError(f"whole-volume inference needs a fully convolutional model (MeshNet), "
                         f"not {type(model).__name__}")
    out = np.empty(image.shape, dtype=np.uint8 if model.config.n_classes <= 256 else np.int16)
    depth = image.shape[0]
    for top in range(0, depth, slab):
        bottom = min(top + slab, depth)
        first, last = max(top - halo, 0), min(bottom + halo, depth)
        x = torch.from_numpy(np.ascontiguousarray(image[first:last]))[None, None].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with runtime.autocast(device, dtype):
            features = model.layers(x)[:, :, top - first:bottom - first]  # (1, F, bottom - top, H, W)
            for start in range(0, bottom - top, classify):
                labels = model.classifier(features[:, :, start:start + classify]).argmax(1)[0]
                out[top + start:top + start + len(labels)] = labels.cpu().numpy()
    return out


def load_model(checkpoint_path: str | os.PathLike, config: InferenceConfig
               ) -> tuple[torch.nn.Module, LabelSet, torch.device, torch.dtype | None]:
    """The checkpoint's network on the configured device and memory layout, its label set,
    the device and the autocast dtype (None: fp32); also sets the thread count."""
    runtime.set_threads(config.threads)
    device = runtime.select_device(config.device)
    dtype = runtime.autocast_dtype(device, config.precision)
    model, labelset, _ = model_from_checkpoint(checkpoint_path)
    model = model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model, labelset, device, dtype


def segment_file(checkpoint_path: str | os.PathLike, image_path: str | os.PathLike,
                 labels_path: str | os.PathLike, lut_path: str | os.PathLike,
                 stats_path: str | os.PathLike, config: InferenceConfig, patch: int = 38) -> dict:
    """Segment one prepared image; write label ids (NIfTI), the colour LUT and timing JSON."""
    model, labelset, device, dtype = load_model(checkpoint_path, config)
    image, affine = load_volume(image_path)
    image = image.astype(np.float32, copy=False)
    if config.mode not in MODES:
        raise ValueError(f"unknown inference mode {config.mode!r}; choose from {list(MODES)}")

    started = time.perf_counter()
    if config.mode == "whole":
        classes = predict_whole(model, image, device, dtype, config.channels_last)
        subvolumes = 0
    else:
        rng = np.random.default_rng(config.seed)
        locations = inference_locations(config.n_subvolumes, image.shape[0], patch, config.sd, rng)
        classes = predict_volume(model, image, locations, patch, labelset.n_classes, config.batch_size,
                                 device, dtype, config.channels_last)
        subvolumes = len(locations)
    seconds = time.perf_counter() - started
    stats = {"mode": config.mode, "seconds": seconds, "subvolumes": subvolumes,
             "subvolumes_per_second": subvolumes / seconds, "device": runtime.describe(device, dtype)}
    log.info("%s: %s inference (%d subvolumes) in %.1f s on %s", image_path, config.mode, subvolumes,
             seconds, stats["device"])
    save_image(labelset.to_ids(classes), affine, labels_path)
    write_text(labelset.lut_text(), lut_path)
    write_text(json.dumps(stats, indent=2) + "\n", stats_path)
    return stats
