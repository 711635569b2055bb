"""Bring a label map back to the scanner grid of the T1 it came from (native space).

Labels predicted on the conformed (or padded, prepared) grid are resampled by nearest
neighbour in world (scanner mm) coordinates onto the original T1's voxel grid, which may be
oblique, anisotropic and in any orientation. On the T1's own conformed grid this inverts
conform's nearest-neighbour map exactly where that map is one-to-one (axis-aligned 1 mm T1s,
odd sizes included): the grid's affine is recomputed in float64 from the T1's header, and ties
are rounded the way conform's rounding sends back. The output keeps the T1's header: its shape,
affine, qform and sform with their codes, zooms and units; only the data type (integers)
and the scaling (none) differ.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from meshseg.image import grid
from meshseg.image.conform import conformed_affine, conformed_size
from meshseg.image.io import ImageError, atomic_path, load_volume
from meshseg.labels import smallest_int_dtype

log = logging.getLogger(__name__)

_GRID_TOLERANCE = 1e-3  # voxels: a float32-stored affine still names the conformed grid


def resample_nearest(
    labels: np.ndarray, labels_affine: np.ndarray, shape: Sequence[int], affine: np.ndarray
) -> np.ndarray:
    """Sample ``labels`` at the world position of every voxel of a ``shape`` grid.

    Parameters
    ----------
    labels, labels_affine
        Source label volume (3-D) and its vox2ras affine.
    shape, affine
        Target grid: its shape (3-D) and vox2ras affine.

    Returns
    -------
    Array of ``shape`` and ``labels.dtype``: the label of the source voxel nearest to each
    target voxel's centre; 0 where that voxel lies outside the source. A target voxel centre
    half-way between two source voxels (a tie, :func:`meshseg.image.grid.nearest_index`) takes
    the one that nearest-neighbour resampling the other way (source to target, halves up, as
    conform does) maps onto it, so the two maps are inverses wherever they are one-to-one.
    """
    vox2vox = np.linalg.inv(labels_affine) @ affine  # target index -> source index
    # A tie on source axis a rounds up when the source voxel up there maps back onto the target
    # voxel: its offset of half a source step, in target voxels, rounds to zero.
    source_step = np.linalg.inv(
        vox2vox[:3, :3]
    )  # column a: target-index step of one source voxel along a
    half_up = np.all(grid.nearest_index(0.5 * source_step) == 0, axis=0)
    return grid.resample(
        labels, vox2vox, shape, functools.partial(grid.sample_nearest, half_up=half_up)
    )


def labels_to_native(
    labels_path: str | os.PathLike, reference_path: str | os.PathLike, out_path: str | os.PathLike
) -> None:
    """Resample the label map ``labels_path`` onto the grid of ``reference_path`` (the T1).

    Writes ``out_path`` atomically: label ids as uint8 when they fit, else int16 or int32,
    with the reference's NIfTI header (:func:`native_header`). A reference with a trailing
    singleton fourth dimension gives a 3-D output. Labels on the reference's conformed grid,
    padded or not, are placed by that grid's float64 affine (:func:`conformed_grid_affine`).
    """
    labels, labels_affine = load_volume(labels_path, labels=True)
    header = native_header(reference_path)
    shape, affine = header.get_data_shape()[:3], header.get_best_affine()
    labels_affine = conformed_grid_affine(labels_affine, affine, shape)
    native = resample_nearest(labels, labels_affine, shape, affine)
    dtype = smallest_int_dtype(native.min(initial=0), native.max(initial=0))
    native = native.astype(dtype, copy=False)
    out = nib.Nifti1Image(native, None, header=header)
    out.set_data_dtype(native.dtype)
    with atomic_path(out_path) as tmp:
        nib.save(out, tmp)
    log.info("%s -> %s on the grid of %s %s", labels_path, out_path, reference_path, shape)


def conformed_grid_affine(
    labels_affine: np.ndarray, affine: np.ndarray, shape: Sequence[int]
) -> np.ndarray:
    """The float64 affine of labels on the conformed grid of a T1 (``affine``, ``shape``).

    A saved conformed or prepared image holds its affine in float32: 160.4999969 for 160.5,
    which would decide every tie of an odd axis by rounding error. When ``labels_affine`` is
    that grid's, moved by whole voxels (padding), the exact affine is recomputed from the T1's
    as :func:`meshseg.image.conform.conform` computed it; any other ``labels_affine`` is returned.
    """
    size = conformed_size(shape, np.linalg.norm(affine[:3, :3], axis=0))
    conformed = conformed_affine(affine, shape, size)
    shift = np.linalg.inv(conformed) @ labels_affine  # identity, translated by whole voxels
    whole = np.round(shift[:3, 3])
    if not (
        np.allclose(shift[:3, :3], np.eye(3), atol=_GRID_TOLERANCE)
        and np.allclose(shift[:3, 3], whole, atol=_GRID_TOLERANCE)
    ):
        return labels_affine
    padding = np.eye(4)
    padding[:3, 3] = whole
    return conformed @ padding


def native_header(path: str | os.PathLike) -> nib.Nifti1Header:
    """A copy of the header of the NIfTI image ``path`` (data not read).

    Raises ImageError if the file is unreadable, not NIfTI, or not 3-D (a trailing singleton
    fourth dimension is allowed).
    """
    try:
        img = nib.load(path)
    except Exception as err:  # nibabel raises many types for bad files
        raise ImageError(
            path, f"not a readable NIfTI image ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(img.header, nib.Nifti1Header):
        raise ImageError(
            path, f"not a NIfTI image ({type(img).__name__}); convert it to .nii.gz first"
        )
    if not (len(img.shape) == 3 or (len(img.shape) == 4 and img.shape[3] == 1)):
        raise ImageError(path, f"expected a 3-D image, got shape {img.shape}")
    return img.header.copy()
