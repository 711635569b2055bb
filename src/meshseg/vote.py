"""Per-voxel hard majority vote over overlapping subvolume predictions."""

from __future__ import annotations

import numpy as np


class VoteAggregator:
    """Collects predicted subvolumes, then takes the per-voxel majority class.

    Parameters
    ----------
    shape
        Spatial shape of the whole volume, e.g. ``(256, 256, 256)``.
    n_classes
        Number of classes C.
    slab
        Slices along the first axis voted at a time: the counts array is ``(C, slab, H, W)``,
        55 MB at 104 classes and 256^2 with the default 8 (uint8 counters while fewer than
        256 subvolumes reach the slab), whatever the volume's depth.

    Notes
    -----
    The predictions are kept as class indices (512 subvolumes of 38^3 take 28 MB), so memory
    does not grow with C x volume as a whole-volume count array would (1.75 GB at 104 classes
    for 256^3, the reference's ``predictor.py``). The result equals count-then-argmax over the
    whole volume: ties go to the lowest class index; a voxel no subvolume covered gets class 0.
    """

    def __init__(self, shape: tuple[int, int, int], n_classes: int, slab: int = 8) -> None:
        self.shape = tuple(shape)
        self.n_classes = n_classes
        self.slab = slab
        self._labels: list[np.ndarray] = []
        self._locations: list[np.ndarray] = []

    def add(self, labels: np.ndarray, locations: np.ndarray) -> None:
        """Keep ``labels`` ``(B, p, p, p)`` class indices cut at start corners ``locations`` ``(B, 3)``."""
        if labels.ndim != 4 or len(labels) != len(locations):
            raise ValueError(f"labels {labels.shape} and locations {locations.shape} do not match")
        self._labels.append(labels.astype(np.uint8 if self.n_classes <= 256 else np.int16, copy=False))
        self._locations.append(np.asarray(locations, dtype=np.int64))

    def result(self) -> np.ndarray:
        """The majority class per voxel (uint8 for up to 256 classes)."""
        out = np.zeros(self.shape, dtype=np.uint8 if self.n_classes <= 256 else np.int16)
        if not self._labels:
            return out
        labels, locations = np.concatenate(self._labels), np.concatenate(self._locations)
        depth = labels.shape[1]
        for top in range(0, self.shape[0], self.slab):
            bottom = min(top + self.slab, self.shape[0])
            reaching = np.flatnonzero((locations[:, 0] < bottom) & (locations[:, 0] + depth > top))
            counter = np.uint8 if len(reaching) < 2**8 else np.uint16 if len(reaching) < 2**16 else np.uint32
            counts = np.zeros((self.n_classes, bottom - top, *self.shape[1:]), dtype=counter)
            for crop, (x, y, z) in zip(labels[reaching], locations[reaching]):
                first, last = max(x, top), min(x + depth, bottom)  # rows of this crop in the slab
                part = crop[first - x:last - x]  # (rows, p, p)
                for c in np.unique(part):
                    counts[c, first - top:last - top, y:y + part.shape[1], z:z + part.shape[2]] += part == c
            out[top:bottom] = np.argmax(counts, axis=0)
        return out
