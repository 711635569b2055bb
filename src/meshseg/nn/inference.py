"""Segment a prepared volume: predict subvolumes in batches, then a per-voxel vote
(meshseg.nn.vote), or one whole-volume pass (meshseg.nn.whole)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from meshseg.image.intensity import qnormalise
from meshseg.image.io import load_volume, save_image, write_json, write_text
from meshseg.labels import largest_component
from meshseg.nn.checkpoint import LoadedModel
from meshseg.nn.fusion import fuse_for_inference
from meshseg.nn.models import require_fully_convolutional
from meshseg.nn.runtime import Compute, check_settings
from meshseg.nn.subvolumes import inference_locations
from meshseg.nn.vote import RULES, VoteAggregator
from meshseg.nn.whole import predict_whole

log = logging.getLogger(__name__)


MODES = ("vote", "whole", "auto")  # auto: the checkpoint's choice (LoadedModel.preprocess)


@dataclass
class InferenceConfig:
    # vote: subvolumes + majority vote; whole: one pass over the volume (MeshNet);
    # auto: the checkpoint's choice (vote, unless it was imported, meshseg.nn.tfjs)
    mode: str = "vote"
    # hard: ties by the voters' summed probability | soft | hard-lowest (meshseg.nn.vote.RULES)
    vote: str = "hard"
    n_subvolumes: int = 512  # grid (343 for 256^3 and 38^3) plus Gaussian crops up to this total
    sd: float = 64.0  # standard deviation of the Gaussian crop centres (voxels)
    batch_size: int = 16  # crops per forward pass
    seed: int = 0  # seeds the Gaussian crops (the same positions for every subject)
    precision: str = "auto"  # auto | fp32 | bf16
    channels_last: bool = True
    device: str = "auto"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown inference mode {self.mode!r}; choose from {list(MODES)}")
        if self.vote not in RULES:
            raise ValueError(f"unknown vote rule {self.vote!r}; choose from {list(RULES)}")
        for name in ("n_subvolumes", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_settings(self.device, self.precision, self.threads)


@dataclass(frozen=True)
class LabelFiles:
    """What :func:`segment_file` writes: label ids (NIfTI), their colour LUT, timing (JSON)."""

    labels: str | os.PathLike
    lut: str | os.PathLike
    stats: str | os.PathLike


@torch.inference_mode()
def predict_crops(
    loaded: LoadedModel,
    image: np.ndarray,
    locations: np.ndarray,
    batch_size: int,
    compute: Compute,
    output: str = "labels",
) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """The ``loaded.patch``-edged crops at ``locations``, batch by batch, as a vote
    (:attr:`meshseg.nn.vote.VoteAggregator.needs`) takes them: ``(predictions, confidence,
    corners)``. ``output`` ``labels``: class indices ``(B, p, p, p)`` (uint8), confidence None;
    ``confidence``: those and the softmax probability of each (float32); ``probabilities``: the
    softmax ``(B, C, p, p, p)`` (float32), confidence None. The network runs fused
    (meshseg.nn.fusion)."""
    patch = loaded.patch
    net = fuse_for_inference(loaded.model.to(compute.device), channels_last=compute.channels_last)
    for start in range(0, len(locations), batch_size):
        chunk = locations[start : start + batch_size]
        x = np.stack([image[a : a + patch, b : b + patch, c : c + patch] for a, b, c in chunk])[
            :, None
        ]
        with compute.autocast():
            logits = net(compute.to_device(torch.from_numpy(x)))  # (B, C, p, p, p)
        confidence = None
        if output == "labels":
            predictions = logits.argmax(1).to(torch.uint8)
        else:
            predictions = torch.softmax(logits.float(), 1)
            if output == "confidence":
                confidence, predictions = predictions.max(1)
                confidence, predictions = confidence.cpu().numpy(), predictions.to(torch.uint8)
        del logits  # not held while the caller votes
        yield predictions.cpu().numpy(), confidence, chunk


def predict_volume(
    loaded: LoadedModel,
    image: np.ndarray,
    locations: np.ndarray,
    batch_size: int,
    compute: Compute,
    vote: str = "hard",
) -> np.ndarray:
    """Class index per voxel by a ``vote`` (meshseg.nn.vote.RULES) of the crops at ``locations``
    (start corners), which are predicted in order of their first-axis start, as the vote needs."""
    votes = VoteAggregator(image.shape, loaded.labelset.n_classes, rule=vote)
    ordered = locations[np.argsort(locations[:, 0], kind="stable")]
    for predictions, confidence, chunk in predict_crops(
        loaded, image, ordered, batch_size, compute, output=votes.needs
    ):
        votes.add(predictions, chunk, confidence)
    return votes.result()


def check_model(loaded: LoadedModel, config: InferenceConfig) -> str:
    """The inference mode ``config`` gives ``loaded`` (``auto``: the checkpoint's); raise
    ``ValueError`` naming the checkpoint unless that mode can run its network."""
    mode = loaded.preprocess["inference"] if config.mode == "auto" else config.mode
    if mode == "whole":
        require_fully_convolutional(loaded.model, f"{loaded.path}: whole-volume inference")
    elif getattr(loaded.model, "has_instance_norm", False):
        raise ValueError(
            f"{loaded.path}: instance norm uses whole-volume statistics: "
            "subvolume votes cannot run it, use whole-volume inference"
        )
    return mode


def network_input(image: np.ndarray, loaded: LoadedModel) -> np.ndarray:
    """A prepared (min-max normalised) volume as ``loaded``'s network expects it."""
    norm = loaded.preprocess["normalisation"]
    if norm["name"] == "qnormalize":
        return qnormalise(image, norm["low"], norm["high"])
    return image


def postprocess(classes: np.ndarray, loaded: LoadedModel) -> np.ndarray:
    """``classes`` as ``loaded``'s checkpoint finishes them: its largest component, if asked."""
    return largest_component(classes) if loaded.preprocess["largest_component"] else classes


def segment_file(
    loaded: LoadedModel,
    image_path: str | os.PathLike,
    files: LabelFiles,
    config: InferenceConfig,
    compute: Compute,
) -> dict:
    """Segment one prepared image; write label ids (NIfTI), the colour LUT and timing JSON.

    Subvolumes are the checkpoint's training patch (``loaded.patch``). The checkpoint's
    ``preprocess`` record chooses the input normalisation, the ``auto`` mode and whether only
    the largest connected component of the labels is kept."""
    mode = check_model(loaded, config)
    image, affine = load_volume(image_path)
    image = network_input(image.astype(np.float32, copy=False), loaded)

    started = time.perf_counter()
    if mode == "whole":
        classes = predict_whole(loaded.model, image, compute)
        subvolumes = 0
    else:
        rng = np.random.default_rng(config.seed)
        locations = inference_locations(
            config.n_subvolumes, image.shape[0], loaded.patch, config.sd, rng
        )
        classes = predict_volume(loaded, image, locations, config.batch_size, compute, config.vote)
        subvolumes = len(locations)
    classes = postprocess(classes, loaded)
    seconds = time.perf_counter() - started
    stats = {
        "mode": mode,
        "vote": config.vote if mode == "vote" else None,
        "seconds": seconds,
        "subvolumes": subvolumes,
        "subvolumes_per_second": subvolumes / seconds,
        "device": compute.describe(),
    }
    log.info(
        "%s: %s inference (%d subvolumes) in %.1f s on %s",
        image_path,
        mode,
        subvolumes,
        seconds,
        stats["device"],
    )
    save_image(loaded.labelset.to_ids(classes), affine, files.labels)
    write_text(loaded.labelset.lut_text(), files.lut)
    write_json(stats, files.stats)
    return stats
