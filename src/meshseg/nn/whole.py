"""Whole-volume inference: one fully convolutional pass over the volume's tissue box."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from meshseg.image.grid import nonzero_box
from meshseg.labels import class_dtype
from meshseg.nn.fusion import fuse_for_inference
from meshseg.nn.models import require_fully_convolutional
from meshseg.nn.runtime import Compute


def zero_padded_block(image: np.ndarray, box: tuple[slice, ...], margin: int) -> np.ndarray:
    """``image[box]`` grown by ``margin`` on every side, zeros where that leaves the volume."""
    block = np.zeros([s.stop - s.start + 2 * margin for s in box], image.dtype)
    inside = tuple(
        slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, image.shape)
    )
    at = tuple(
        slice(i.start - (s.start - margin), i.stop - (s.start - margin))
        for i, s in zip(inside, box)
    )
    block[at] = image[inside]
    return block


@torch.inference_mode()
def predict_whole(
    model: torch.nn.Module,
    image: np.ndarray,
    compute: Compute,
    slab: int | None = None,
    classify: int = 8,
    budget_mb: int = 2048,
) -> np.ndarray:
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
    radius = require_fully_convolutional(model)
    net = fuse_for_inference(
        model.to(compute.device), valid=True, channels_last=compute.channels_last
    )

    def labels_of(block: np.ndarray) -> Iterator[np.ndarray]:
        x = compute.to_device(torch.from_numpy(block)[None, None])
        with compute.autocast():
            features = net.layers(x)
            for start in range(0, features.shape[2], classify):
                yield (
                    net.classifier(features[:, :, start : start + classify])
                    .argmax(1)[0]
                    .cpu()
                    .numpy()
                )

    empty = next(labels_of(np.zeros((2 * radius + 1,) * 3, np.float32)))[0, 0, 0]
    out = np.full(image.shape, empty, dtype=class_dtype(model.config.n_classes))
    box = nonzero_box(image, radius)
    if box is None:
        return out
    rows, cols = (s.stop - s.start + 2 * radius for s in box[1:])
    itemsize = torch.finfo(compute.dtype).bits // 8 if compute.dtype is not None else 4
    per_slice = 2 * model.config.channels * rows * cols * itemsize  # two feature maps alive
    slab = slab or max(budget_mb * 2**20 // per_slice - 2 * radius, 1)
    for top in range(box[0].start, box[0].stop, slab):
        part = (slice(top, min(top + slab, box[0].stop)), *box[1:])
        at = top
        for labels in labels_of(zero_padded_block(image, part, radius)):
            out[at : at + len(labels), box[1], box[2]] = labels
            at += len(labels)
    return out
