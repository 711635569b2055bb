"""Per-voxel hard majority vote over overlapping subvolume predictions."""

from __future__ import annotations

import numpy as np


class VoteAggregator:
    """Counts, per voxel and class, how many subvolumes voted for that class.

    Parameters
    ----------
    shape
        Spatial shape of the whole volume, e.g. ``(256, 256, 256)``.
    n_classes
        Number of classes C.
    max_votes
        Upper bound on the votes any voxel can get (the number of subvolumes); picks the
        smallest counter type that cannot overflow.

    Notes
    -----
    The counts array is ``(C, *shape)``: 50 MB at 3 classes and 256^3 with uint8 counters.
    Ties go to the lowest class index; a voxel no subvolume covered gets class 0.
    Adapted from Catalyst.Neuro ``predictor.py`` and torchio's ``GridAggregator``.
    """

    def __init__(self, shape: tuple[int, int, int], n_classes: int, max_votes: int) -> None:
        dtype = np.uint8 if max_votes < 2**8 else np.uint16 if max_votes < 2**16 else np.uint32
        self.n_classes = n_classes
        self.counts = np.zeros((n_classes, *shape), dtype=dtype)

    def add(self, labels: np.ndarray, locations: np.ndarray) -> None:
        """Add one vote per voxel of each predicted subvolume.

        ``labels`` is ``(B, p, p, p)`` class indices, ``locations`` the ``(B, 3)`` start corners.
        """
        if labels.ndim != 4 or len(labels) != len(locations):
            raise ValueError(f"labels {labels.shape} and locations {locations.shape} do not match")
        patch = labels.shape[1:]
        cells = int(np.prod(patch))
        offsets = np.arange(cells)
        for crop, (x, y, z) in zip(labels, locations):
            one_hot = np.bincount(crop.ravel().astype(np.int64) * cells + offsets,
                                  minlength=self.n_classes * cells)  # (C * p^3,)
            region = self.counts[:, x:x + patch[0], y:y + patch[1], z:z + patch[2]]
            region += one_hot.reshape(self.n_classes, *patch).astype(self.counts.dtype)

    def result(self) -> np.ndarray:
        """The majority class per voxel (uint8 for up to 256 classes)."""
        dtype = np.uint8 if self.n_classes <= 256 else np.int16
        return np.argmax(self.counts, axis=0).astype(dtype)
