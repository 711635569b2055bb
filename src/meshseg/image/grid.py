"""Voxel grids in world coordinates: where the voxels of one grid fall in another, sampling
there by slabs, nearest-neighbour indices whose ties a backward map can undo, and the box of
the non-zero voxels (pure numpy, no file I/O).

A ``vox2vox`` matrix maps target voxel indices to source voxel indices:
``inv(source_affine) @ target_affine`` for two vox2ras affines.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np

TIE = 1e-4  # voxel: a coordinate this close to a half is a tie (rounding error, not position)
SLAB_VOXELS = 2**20  # target voxels mapped at once: 24 MB of float64 coordinates

Sampler = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (volume, coords (3, ...)) -> values


def source_coords(vox2vox: np.ndarray, box: Sequence[slice]) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(rows, coords)`` for slabs of the target ``box`` (three slices with starts).

    ``rows`` is the slab's slice of the first axis, ``coords`` the ``(3, S, H, D)`` float64
    source indices ``vox2vox @ [i, j, k, 1]`` of its voxels; a slab holds about
    ``SLAB_VOXELS`` voxels.
    """
    columns = [np.arange(axis.start, axis.stop, dtype=float) for axis in box[1:]]
    slab = max(SLAB_VOXELS // max(columns[0].size * columns[1].size, 1), 1)
    offset = vox2vox[:3, 3].reshape(3, 1, 1, 1)
    for start in range(box[0].start, box[0].stop, slab):
        rows = slice(start, min(start + slab, box[0].stop))
        points = np.stack(
            np.meshgrid(np.arange(rows.start, rows.stop, dtype=float), *columns, indexing="ij")
        )  # (3, S, H, D)
        yield rows, np.tensordot(vox2vox[:3, :3], points, axes=1) + offset


def resample(
    volume: np.ndarray, vox2vox: np.ndarray, shape: Sequence[int], sample: Sampler
) -> np.ndarray:
    """``sample`` ``volume`` at ``vox2vox`` @ each voxel index of a target grid of ``shape``.

    Returns an array of ``shape`` and ``volume.dtype``. Target voxels farther than one voxel
    from the source are not sampled: they stay 0. The identity (same shape, ``vox2vox``
    within 1e-6 voxels of the unit matrix) returns a copy: ``sample`` must interpolate, as
    nearest and trilinear do, giving each voxel centre its own value.
    """
    if tuple(shape) == volume.shape and np.allclose(vox2vox, np.eye(4), rtol=0, atol=1e-6):
        return volume.copy()
    out = np.zeros(tuple(shape), dtype=volume.dtype)
    box = _reachable_box(vox2vox, volume.shape, shape)
    for rows, coords in source_coords(vox2vox, box):
        out[rows, box[1], box[2]] = sample(volume, coords)
    return out


def nearest_index(coords: np.ndarray, half_up: bool | np.ndarray = True) -> np.ndarray:
    """Nearest voxel index of each coordinate along the first axis of ``coords`` ``(3, ...)``.

    Coordinates within ``TIE`` of a half are ties. They go up (FreeSurfer's floor(x + 0.5))
    where ``half_up``, per axis, else down. Treating them as exact halves makes the choice
    independent of the rounding errors in affines, so that a backward map can undo it
    (:func:`meshseg.image.native.resample_nearest`): on an odd axis of an axis-aligned 1 mm grid,
    every conformed voxel centre lies half-way between two input voxel centres.
    """
    # Halves down are halves up of the mirrored coordinate: ceil(x - h) = -floor(-x + h).
    sign = np.where(np.reshape(half_up, (-1,) + (1,) * (coords.ndim - 1)), 1.0, -1.0)
    return (sign * np.floor(sign * coords + (0.5 + TIE))).astype(np.intp)


def sample_nearest(
    volume: np.ndarray, coords: np.ndarray, half_up: bool | np.ndarray = True
) -> np.ndarray:
    """Values of the voxels at :func:`nearest_index` of ``coords`` ``(3, ...)``; 0 outside."""
    index = nearest_index(coords, half_up)
    extent = np.array(volume.shape).reshape((3,) + (1,) * (coords.ndim - 1))
    inside = np.all((index >= 0) & (index < extent), axis=0)
    return np.where(inside, volume[tuple(np.clip(index, 0, extent - 1))], 0)


def nonzero_box(image: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """The bounding box of the non-zero voxels grown by ``margin`` (within the volume), or None.

    >>> nonzero_box(np.array([[0, 0, 0], [0, 1, 0]]), margin=1)
    (slice(0, 2, None), slice(0, 3, None))
    """
    box = []
    for axis in range(image.ndim):
        filled = np.flatnonzero(
            np.any(image != 0, axis=tuple(a for a in range(image.ndim) if a != axis))
        )
        if filled.size == 0:
            return None
        start, stop = int(filled[0]) - margin, int(filled[-1]) + 1 + margin
        box.append(slice(max(start, 0), min(stop, image.shape[axis])))
    return tuple(box)


def _reachable_box(
    vox2vox: np.ndarray, in_shape: Sequence[int], shape: Sequence[int]
) -> tuple[slice, ...]:
    """Box of target indices mapping within one voxel of the source (its corners' bounds)."""
    corners = np.array(list(itertools.product(*[(-1.0, float(n)) for n in in_shape])))
    to_out = np.linalg.inv(vox2vox)
    mapped = corners @ to_out[:3, :3].T + to_out[:3, 3]
    low = np.clip(np.floor(mapped.min(axis=0)).astype(int), 0, shape)
    high = np.clip(np.ceil(mapped.max(axis=0)).astype(int) + 1, 0, shape)
    return tuple(slice(a, b) for a, b in zip(low, high))
