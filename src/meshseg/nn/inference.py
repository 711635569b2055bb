"""Segment a prepared volume: predict subvolumes in batches, then a per-voxel vote
(meshseg.nn.vote)."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from meshseg.image.io import load_volume, save_image, write_text
from meshseg.labels import LabelSet, load_labelset
from meshseg.nn import runtime
from meshseg.nn.checkpoint import model_from_checkpoint
from meshseg.nn.fusion import fuse_for_inference
from meshseg.nn.subvolumes import inference_locations
from meshseg.nn.vote import VoteAggregator

log = logging.getLogger(__name__)


MODES = ("vote", "whole")


@dataclass
class InferenceConfig:
    mode: str = "vote"  # vote: subvolumes + majority vote; whole: one pass over the volume (MeshNet)
    # hard: ties by summed probability | soft | hard-lowest (meshseg.nn.vote.RULES)
    vote: str = "hard"
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
                  channels_last: bool, probabilities: bool = False
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Class indices ``(B, p, p, p)`` (uint8) of the crops at ``locations``, or with
    ``probabilities`` their softmax ``(B, C, p, p, p)`` (float32), batch by batch, each with its
    start corners ``(B, 3)``; the network runs fused (meshseg.nn.fusion)."""
    net = fuse_for_inference(model, channels_last=channels_last)
    for start in range(0, len(locations), batch_size):
        chunk = locations[start:start + batch_size]
        x = np.stack([image[a:a + patch, b:b + patch, c:c + patch] for a, b, c in chunk])[:, None]
        x = torch.from_numpy(x).to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with runtime.autocast(device, dtype):
            logits = net(x)  # (B, C, p, p, p)
        out = torch.softmax(logits.float(), 1) if probabilities else logits.argmax(1).to(torch.uint8)
        del logits  # not held while the caller votes
        yield out.cpu().numpy(), chunk


def predict_volume(model: torch.nn.Module, image: np.ndarray, locations: np.ndarray, patch: int,
                   n_classes: int, batch_size: int, device: torch.device,
                   dtype: torch.dtype | None, channels_last: bool, vote: str = "hard") -> np.ndarray:
    """Class index per voxel by a ``vote`` (meshseg.nn.vote.RULES) of the crops at ``locations``
    (start corners), which are predicted in order of their first-axis start, as the vote needs."""
    votes = VoteAggregator(image.shape, n_classes, rule=vote)
    ordered = locations[np.argsort(locations[:, 0], kind="stable")]
    for predictions, chunk in predict_crops(model, image, ordered, patch, batch_size, device, dtype,
                                            channels_last, probabilities=votes.needs_probabilities):
        votes.add(predictions, chunk)
    return votes.result()


def tissue_box(image: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    """The bounding box of the non-zero voxels grown by ``margin`` (within the volume)."""
    box = []
    for axis in range(image.ndim):
        filled = np.flatnonzero(np.any(image != 0, axis=tuple(a for a in range(image.ndim) if a != axis)))
        if filled.size == 0:
            return None
        box.append(slice(max(filled[0] - margin, 0), min(filled[-1] + 1 + margin, image.shape[axis])))
    return tuple(box)


def zero_padded_block(image: np.ndarray, box: tuple[slice, ...], margin: int) -> np.ndarray:
    """``image[box]`` grown by ``margin`` on every side, zeros where that leaves the volume."""
    block = np.zeros([s.stop - s.start + 2 * margin for s in box], image.dtype)
    inside = tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, image.shape))
    at = tuple(slice(i.start - (s.start - margin), i.stop - (s.start - margin)) for i, s in zip(inside, box))
    block[at] = image[inside]
    return block


@torch.inference_mode()
def predict_whole(model: torch.nn.Module, image: np.ndarray, device: torch.device,
                  dtype: torch.dtype | None, channels_last: bool, slab: int | None = None,
                  classify: int = 8, budget_mb: int = 2048) -> np.ndarray:
    """Class index per voxel from one fully convolutional pass over the zero-surrounded volume.

    Only the non-zero voxels' bounding box grown by the receptive radius R is computed:
    every voxel outside it sees nothing but zeros and gets the label the network gives an
    empty input (computed once). Inside, the fused network runs unpadded ("valid")
    convolutions over the image read R voxels further out, ``slab`` slices at a time (by
    default as many as fit in ``budget_mb`` of features), so the labels do not depend on
    the slabs. They equal a single zero-padded pass except within R of the volume's faces,
    where that pass pads every feature map instead of the image. The classifier runs
    ``classify`` slices at a time, so at 104 classes and 256^2 only about 220 MB of logits
    are held. Needs MeshNet's ``layers`` / ``classifier`` split; a U-Net's pooling makes its
    output depend on the tiling.
    """
    radius = getattr(model, "receptive_radius", None)
    if radius is None:
        raise ValueError(f"whole-volume inference needs a fully convolutional model (MeshNet), "
                         f"not {type(model).__name__}")
    net = fuse_for_inference(model, valid=True, channels_last=channels_last).to(device)

    def labels_of(block: np.ndarray) -> Iterator[np.ndarray]:
        x = torch.from_numpy(block)[None, None].to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with runtime.autocast(device, dtype):
            features = net.layers(x)
            for start in range(0, features.shape[2], classify):
                yield net.classifier(features[:, :, start:start + classify]).argmax(1)[0].cpu().numpy()

    empty = next(labels_of(np.zeros((2 * radius + 1,) * 3, np.float32)))[0, 0, 0]
    out = np.full(image.shape, empty, dtype=np.uint8 if model.config.n_classes <= 256 else np.int16)
    box = tissue_box(image, radius)
    if box is None:
        return out
    rows, cols = (s.stop - s.start + 2 * radius for s in box[1:])
    itemsize = torch.finfo(dtype).bits // 8 if dtype is not None else 4
    per_slice = 2 * model.config.channels * rows * cols * itemsize  # two feature maps alive
    slab = slab or max(budget_mb * 2**20 // per_slice - 2 * radius, 1)
    for top in range(box[0].start, box[0].stop, slab):
        part = (slice(top, min(top + slab, box[0].stop)), *box[1:])
        at = top
        for labels in labels_of(zero_padded_block(image, part, radius)):
            out[at:at + len(labels), box[1], box[2]] = labels
            at += len(labels)
    return out


def load_model(checkpoint_path: str | os.PathLike, config: InferenceConfig, labelset: str | None = None
               ) -> tuple[torch.nn.Module, LabelSet, torch.device, torch.dtype | None]:
    """The checkpoint's network on the configured device, its label set, the device and the
    autocast dtype (None: fp32); also sets the thread count. Given ``labelset`` (a name or
    TSV), a checkpoint trained for another label set is refused, naming the file."""
    runtime.set_threads(config.threads)
    device = runtime.select_device(config.device)
    dtype = runtime.autocast_dtype(device, config.precision)
    expected = load_labelset(labelset) if labelset else None
    model, labelset, _ = model_from_checkpoint(checkpoint_path, expected)
    return model.to(device), labelset, device, dtype


def segment_file(checkpoint_path: str | os.PathLike, image_path: str | os.PathLike,
                 labels_path: str | os.PathLike, lut_path: str | os.PathLike,
                 stats_path: str | os.PathLike, config: InferenceConfig, patch: int = 38,
                 labelset: str | None = None) -> dict:
    """Segment one prepared image; write label ids (NIfTI), the colour LUT and timing JSON.

    ``labelset``: the label set the workflow expects (see :func:`load_model`)."""
    model, labelset, device, dtype = load_model(checkpoint_path, config, labelset)
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
                                 device, dtype, config.channels_last, config.vote)
        subvolumes = len(locations)
    seconds = time.perf_counter() - started
    stats = {"mode": config.mode, "vote": config.vote if config.mode == "vote" else None,
             "seconds": seconds, "subvolumes": subvolumes,
             "subvolumes_per_second": subvolumes / seconds, "device": runtime.describe(device, dtype)}
    log.info("%s: %s inference (%d subvolumes) in %.1f s on %s", image_path, config.mode, subvolumes,
             seconds, stats["device"])
    save_image(labelset.to_ids(classes), affine, labels_path)
    write_text(labelset.lut_text(), lut_path)
    write_text(json.dumps(stats, indent=2) + "\n", stats_path)
    return stats
