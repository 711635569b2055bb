"""Zero-padding to a cube and min-max normalisation (pure numpy, no file I/O)."""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)


def pad_to_cube(
    data: np.ndarray, affine: np.ndarray, size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad (centred) each axis of ``data`` to ``size``; crop (centred) an axis that is larger.

    The affine is shifted so every voxel keeps its world position. For an axis of length n
    the pad before is ``(size - n) // 2``; a crop removes ``(n - size) // 2`` voxels first.

    Returns
    -------
    ``(padded, affine)``.
    """
    before = [(size - n) // 2 for n in data.shape]  # negative: crop
    if any(b < 0 for b in before):
        log.warning(
            "volume of shape %s is larger than %d^3: cropping the centre; anatomy "
            "outside it is lost",
            data.shape,
            size,
        )
    out = np.zeros((size,) * 3, dtype=data.dtype)
    src = tuple(slice(max(-b, 0), max(-b, 0) + min(n, size)) for b, n in zip(before, data.shape))
    dst = tuple(slice(max(b, 0), max(b, 0) + min(n, size)) for b, n in zip(before, data.shape))
    out[dst] = data[src]
    shift = np.eye(4)
    shift[:3, 3] = [-b for b in before]
    return out, affine @ shift


def intensity_range(data: np.ndarray) -> tuple[np.generic, np.generic]:
    """``(min, max)`` of ``data``, in its dtype.

    Raises ``ValueError`` for a constant image, which carries no anatomy.
    """
    low, high = data.min(), data.max()
    if low == high:
        raise ValueError(f"constant image (every voxel is {low}): nothing to segment")
    return low, high


def minmax_normalise(data: np.ndarray) -> np.ndarray:
    """Rescale intensities linearly to [0, 1] as float32 (ValueError for a constant image)."""
    low, high = map(float, intensity_range(data))
    return ((data.astype(np.float32) - low) / (high - low)).astype(np.float32)


# qnormalize's epsilon is 1e-3 in the uint8 units of a conformed volume (brainchop); meshseg
# applies it to the prepared volume, min-max scaled from 0..255 to [0, 1], hence / 255.
QNORMALIZE_EPS = 1e-3 / 255


def qnormalise(
    data: np.ndarray, low: float = 0.02, high: float = 0.98, eps: float = QNORMALIZE_EPS
) -> np.ndarray:
    """brainchop's ``qnormalize``: ``(v - q_low) / (q_high - q_low + eps)`` clipped to [0, 1].

    The quantiles are numpy's linear ones over the whole float32 volume. On a prepared volume
    (a 0..255 conformed volume divided by 255) this equals brainchop's on the conformed one.
    """
    data = data.astype(np.float32, copy=False)
    q_low, q_high = np.quantile(data, [low, high])
    return np.clip((data - q_low) / (q_high - q_low + eps), 0, 1).astype(np.float32)
