"""Where 38^3 subvolumes are cut: a covering grid and truncated-Gaussian centres.

Locations are the start corners of cubic subvolumes, an ``(N, 3)`` int array; a subvolume is
``volume[x:x+p, y:y+p, z:z+p]``. Adapted from Catalyst.Neuro ``coords_generator.py``
(docs/references.md: Subvolume sampling; Inference and vote).
"""

from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)


def _check_sizes(size: int, patch: int) -> None:
    if not 0 < patch <= size:
        raise ValueError(f"subvolume size {patch} must be in 1..{size} (the volume size)")


def grid_starts(size: int, patch: int) -> list[int]:
    """Start indices along one axis of a grid that covers every voxel.

    Subvolumes are laid side by side from 0; the last one is moved back to end flush with
    the edge. Worked example, size 256 and patch 38: ``ceil(256/38) = 7`` starts
    ``0, 38, 76, 114, 152, 190, 218``; the last one overlaps its neighbour by 10 voxels.
    """
    _check_sizes(size, patch)
    count = math.ceil(size / patch)
    return [min(i * patch, size - patch) for i in range(count)]


def grid_locations(size: int, patch: int) -> np.ndarray:
    """Start corners of the covering grid in 3-D (343 for 256 and 38)."""
    starts = grid_starts(size, patch)
    return np.array([(x, y, z) for x in starts for y in starts for z in starts], dtype=np.int64)


def gaussian_locations(
    n: int, size: int, patch: int, sd: float, rng: np.random.Generator
) -> np.ndarray:
    """Start corners of ``n`` subvolumes whose centres follow a truncated normal per axis.

    Each centre coordinate is drawn from N(size/2, sd^2), rounded to an integer and redrawn
    until the subvolume ``[c - patch//2, c - patch//2 + patch)`` lies inside the volume
    (centre in 19..237 for size 256, patch 38). ``sd=64`` is the reference code;
    the seed text's "diagonal covariance of 50" is ``sd = sqrt(50) = 7.07``.
    """
    _check_sizes(size, patch)
    if sd <= 0:
        raise ValueError(f"standard deviation of crop centres must be > 0, got {sd}")
    half = patch // 2
    low, high = half, size - patch + half  # allowed centres, inclusive
    centres = np.empty(3 * n, dtype=np.int64)
    filled = 0
    while filled < centres.size:
        draw = np.rint(rng.normal(size / 2, sd, size=2 * (centres.size - filled) + 16)).astype(
            np.int64
        )
        draw = draw[(draw >= low) & (draw <= high)][: centres.size - filled]
        centres[filled : filled + draw.size] = draw
        filled += draw.size
    return centres.reshape(n, 3) - half


def inference_locations(
    n_total: int, size: int, patch: int, sd: float, rng: np.random.Generator
) -> np.ndarray:
    """The covering grid first, then Gaussian subvolumes until there are ``n_total``.

    When ``n_total`` is smaller than the grid, the whole grid is still used (every voxel
    must get a vote) and a warning is logged.
    """
    grid = grid_locations(size, patch)
    if n_total < len(grid):
        log.warning(
            "%d subvolumes requested but the covering grid needs %d: using the grid only",
            n_total,
            len(grid),
        )
        return grid
    return np.concatenate([grid, gaussian_locations(n_total - len(grid), size, patch, sd, rng)])
