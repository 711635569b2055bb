"""Conform images as FreeSurfer's ``mri_convert -c`` does (REFERENCE.md section 3).

A conformed image is a cube of 1 mm LIA voxels centred on the input's c_ras: uint8 for a T1,
integers for labels. :func:`conform_file` runs :func:`conform` or FreeSurfer's ``mri_convert``.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from meshseg.image import io
from meshseg.labels import integer_labels

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "freesurfer", "python")
_LIA = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # columns: i, j, k
_N_BINS = 1000  # MRIchangeType's N_HIST_BINS
_F_HIGH = np.float32(0.999)  # mri_convert passes f_high as a C float
_SLAB = 16  # output slices resampled at a time: about 50 MB of coordinates for 256^3
_TOLERANCE = 1e-4  # of voxel sizes and direction cosines in is_conformed
TIE = 1e-4  # voxel: a coordinate this close to a half is a tie (rounding error, not position)


def conformed_size(shape: Sequence[int], zooms: Sequence[float]) -> int:
    """Side of the conformed cube in 1 mm voxels (FreeSurfer ``MRIfindRightSize``).

    w = ceil(largest field of view, max(shape_i * zooms_i) mm); 256 if w < 256 or
    (w - 256) / 256 < 0.1, else w. The products are single precision, as FreeSurfer's float
    voxel size times the width: 260 voxels of 1.1 mm (float32 1.10000002) give 286, not 287.

    Examples
    --------
    >>> conformed_size((176, 240, 256), (1.2, 1, 1)), conformed_size((290,) * 3, (1, 1, 1))
    (256, 290)
    """
    fov = np.asarray(zooms[:3], dtype=np.float32) * np.asarray(shape[:3], dtype=np.float32)
    width = math.ceil(float(fov.max()))
    return 256 if width < 256 or (width - 256) / 256 < 0.1 else width


def conformed_affine(affine: np.ndarray, shape: Sequence[int], size: int) -> np.ndarray:
    """Vox2ras of the conformed grid: LIA, 1 mm, ``size``^3, centred on the input's c_ras.

    c_ras = ``affine`` @ [W/2, H/2, D/2, 1] (N/2, FreeSurfer's convention, not (N-1)/2) is
    where output voxel [size/2] * 3 lies.
    """
    c_ras = np.asarray(affine, dtype=float) @ np.array([*(n / 2 for n in shape[:3]), 1.0])
    out = np.eye(4)
    out[:3, :3] = _LIA
    out[:3, 3] = c_ras[:3] - _LIA @ np.full(3, size / 2)
    return out


def uchar_scale(data: np.ndarray) -> np.ndarray:
    """Change intensities to uint8 as ``mri_convert`` does (f_low 0, f_high 0.999).

    uint8 input is returned unchanged; any other type is rescaled, even within 0..255, to
    255 (v - min) / (src_max - min), clipped to 0..255 with halves rounded up (FreeSurfer's
    nint). Voxels exactly 0 in ``data`` stay 0, as mri_convert resets them. A constant image
    raises ValueError.

    Notes
    -----
    Follows ``MRIchangeType`` (freesurfer/freesurfer, utils/mri.cpp) in its single precision.
    Histogram: 1000 bins over [min, max], bin = int((v - min) / bin_size), the maximum in the
    last. n = int((1 - 0.999f) * number of voxels with abs(v) >= 1e-15). Bins are summed from
    the brightest down until n voxels are passed; src_max is the lower edge of the bin *below*
    the one completing the count (edge 999 when n = 0). That is usually two edges under the
    first edge with at most n voxels above it, which FastSurfer's ``getscale`` takes minus 2;
    but across empty bins under the cut FastSurfer slides down and FreeSurfer does not (n = 0
    differs too). This follows FreeSurfer.
    """
    if data.dtype == np.uint8:
        return data
    values = np.asarray(data, dtype=np.float32)
    low, high = values.min(), values.max()
    if low == high:
        raise ValueError(f"cannot scale a constant image to uchar: every voxel is {low}")
    bin_size = (high - low) / np.float32(_N_BINS)
    n_out = int((1.0 - float(_F_HIGH)) * np.count_nonzero(np.abs(values) >= 1e-15))
    edge = _top_edge(_histogram(values, low, bin_size), n_out)
    src_max = np.float32(edge) * bin_size + low
    scale = np.float32(255) / (src_max - low) if src_max > low else np.float32(1)
    logger.debug("uchar scale: src_min %g, src_max %g (bin edge %d)", low, src_max, edge)
    out = _to_uchar(scale * (values - low))
    out[data == 0] = 0
    return out


def conform(img: nib.spatialimages.SpatialImage, labels: bool = False) -> nib.Nifti1Image:
    """Python version of FreeSurfer's ``mri_convert -c``.

    The output has ``conformed_size``^3 voxels and ``conformed_affine`` as qform and sform.
    A T1 (``labels`` False) is :func:`uchar_scale`-d, then resliced trilinearly and rounded
    half up to uint8. Labels are not scaled: floats are rounded (ValueError if one is more
    than 1e-3 from a whole number), resliced by nearest neighbour (:func:`nearest_index`) and
    stored as int16 when they fit, else int32 (``mri_convert -c -rt nearest``).

    Notes
    -----
    As ``mri_convert -c``: scale, then reslice (FastSurfer reverses them); ``MRIresample``'s
    sampling, where input voxels beyond the edge count as 0 (half a voxel past the edge is
    half the edge value). Coordinates are double precision (FreeSurfer: float).
    """
    if len(img.shape) != 3:
        raise ValueError(f"expected a 3-D image, got shape {img.shape}")
    size = conformed_size(img.shape, np.linalg.norm(img.affine[:3, :3], axis=0))
    affine = conformed_affine(img.affine, img.shape, size)
    vox2vox = np.linalg.inv(img.affine) @ affine
    data = np.asanyarray(img.dataobj)
    if labels:
        out = _resample(integer_labels(data), vox2vox, size, _nearest)
    else:
        out = _resample(uchar_scale(data), vox2vox, size, _trilinear_uchar)
    logger.info("conformed %s of shape %s to %d^3", "labels" if labels else "T1", img.shape, size)
    out_img = nib.Nifti1Image(out, affine)
    out_img.set_qform(affine, code=1)
    out_img.set_sform(affine, code=1)
    return out_img


def is_conformed(img: nib.spatialimages.SpatialImage, labels: bool = False) -> bool:
    """Whether ``img`` is conformed, from ``shape``, ``affine`` and data dtype only.

    That is a cube of ``conformed_size`` 1 mm voxels, direction cosines LIA (both within
    1e-4), dtype uint8, or any integer dtype for ``labels``.
    """
    shape, matrix = img.shape, img.affine[:3, :3]
    zooms = np.linalg.norm(matrix, axis=0)
    if len(shape) != 3 or len(set(shape)) != 1 or np.abs(zooms - 1).max() > _TOLERANCE:
        return False
    if np.abs(matrix / zooms - _LIA).max() > _TOLERANCE or shape[0] != conformed_size(shape, zooms):
        return False
    dtype = img.get_data_dtype()
    return dtype.kind in "iu" if labels else dtype == np.uint8


def conform_file(
    in_path: str | os.PathLike, out_path: str | os.PathLike, labels: bool = False, backend: str = "auto"
) -> str:
    """Conform the image file ``in_path`` (labels if ``labels``) into ``out_path`` atomically.

    ``backend`` is "python" (:func:`conform`), "freesurfer" (``mri_convert --conform`` run by
    nipype) or "auto": "freesurfer" when ``mri_convert`` is on PATH, else "python". Input
    already conformed takes the same path. Returns the backend used. Raises ValueError for
    an unknown backend, ImageError (naming the file) for input that cannot be conformed.

    Notes
    -----
    For labels FreeSurfer gets ``--resample_type nearest --out_data_type int --no_scale 1``:
    with nearest alone, ``mri_convert -c`` rescales labels into uchar (ids above 255 lost).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown conform backend {backend!r}; allowed: {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = "freesurfer" if shutil.which("mri_convert") else "python"
    if backend == "freesurfer":
        _run_mri_convert(Path(in_path), Path(out_path), labels)
    else:
        img = io.load_image(in_path)
        try:
            out = conform(img, labels=labels)
        except ValueError as err:
            raise io.ImageError(in_path, str(err)) from None
        io.save_image(np.asanyarray(out.dataobj), out.affine, out_path)
    logger.info("conformed %s -> %s with the %s backend", in_path, out_path, backend)
    return backend


def _histogram(values: np.ndarray, low: np.float32, bin_size: np.float32) -> np.ndarray:
    """MRIchangeType's bin counts: bin = int((v - low) / bin_size), clamped to 0..999."""
    bins = ((values - low) / bin_size).astype(np.int32)
    np.clip(bins, 0, _N_BINS - 1, out=bins)
    return np.bincount(bins.ravel(), minlength=_N_BINS)


def _top_edge(counts: np.ndarray, n_out: int) -> int:
    """Bin edge of src_max: MRIchangeType's loop down from the brightest bin."""
    passed, edge = 0, _N_BINS - 1
    while passed < n_out and edge > 0:
        passed += counts[edge]
        edge -= 1
    return edge


def _to_uchar(values: np.ndarray) -> np.ndarray:
    """Clip to 0..255 and round halves up like FreeSurfer's nint (np.rint gives 100.5 -> 100)."""
    values = np.clip(values, 0, 255)
    whole = np.floor(values)
    return (whole + (values - whole >= 0.5)).astype(np.uint8)


def _trilinear_uchar(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear samples as uint8; input voxels beyond the edge are 0 (``grid-constant``)."""
    samples = ndimage.map_coordinates(volume, coords, output=np.float64, order=1, mode="grid-constant")
    return _to_uchar(samples)


def nearest_index(coords: np.ndarray, half_up: bool | np.ndarray = True) -> np.ndarray:
    """Nearest voxel index of each coordinate along the first axis of ``coords`` ``(3, ...)``.

    Coordinates within ``TIE`` of a half are ties. They go up (FreeSurfer's floor(x + 0.5))
    where ``half_up``, per axis, else down. Treating them as exact halves makes the choice
    independent of the rounding errors in affines, so that a backward map can undo it
    (:func:`meshseg.image.native.resample_nearest`): on an odd axis of an axis-aligned 1 mm grid,
    every conformed voxel centre lies half-way between two input voxel centres.
    """
    up = np.broadcast_to(np.reshape(half_up, (-1,) + (1,) * (coords.ndim - 1)), coords.shape)
    index = np.where(up, np.floor(coords + (0.5 + TIE)), np.ceil(coords - (0.5 + TIE)))
    return index.astype(np.intp)


def _nearest(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Nearest-neighbour samples (halves up, :func:`nearest_index`), 0 where that index is outside."""
    index = nearest_index(coords)
    extent = np.array(volume.shape).reshape(3, 1, 1, 1)
    inside = np.all((index >= 0) & (index < extent), axis=0)
    return np.where(inside, volume[tuple(np.clip(index, 0, extent - 1))], 0)


def _resample(
    volume: np.ndarray, vox2vox: np.ndarray, size: int, sample: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """``sample`` ``volume`` at ``vox2vox`` @ each output index of a ``size``^3 grid, by slabs.

    Output voxels farther than one voxel from the input are not sampled: they stay 0.
    """
    out = np.zeros((size,) * 3, dtype=volume.dtype)
    box = _reachable_box(vox2vox, volume.shape, size)
    columns = [np.arange(axis.start, axis.stop, dtype=float) for axis in box[1:]]
    for start in range(box[0].start, box[0].stop, _SLAB):
        rows = np.arange(start, min(start + _SLAB, box[0].stop), dtype=float)
        points = np.stack(np.meshgrid(rows, *columns, indexing="ij"))  # (3, slab, H, D)
        coords = np.tensordot(vox2vox[:3, :3], points, axes=1) + vox2vox[:3, 3].reshape(3, 1, 1, 1)
        out[start : start + len(rows), box[1], box[2]] = sample(volume, coords)
    return out


def _reachable_box(vox2vox: np.ndarray, in_shape: Sequence[int], size: int) -> tuple[slice, ...]:
    """Box of output indices mapping within one voxel of the input (its corners' bounds)."""
    corners = np.array(list(itertools.product(*[(-1.0, float(n)) for n in in_shape])))
    to_out = np.linalg.inv(vox2vox)
    mapped = corners @ to_out[:3, :3].T + to_out[:3, 3]
    low = np.clip(np.floor(mapped.min(axis=0)).astype(int), 0, size)
    high = np.clip(np.ceil(mapped.max(axis=0)).astype(int) + 1, 0, size)
    return tuple(slice(a, b) for a, b in zip(low, high))


def _run_mri_convert(in_path: Path, out_path: Path, labels: bool) -> None:
    """``mri_convert --conform`` through nipype into a temporary file renamed to ``out_path``."""
    from nipype.interfaces.freesurfer import MRIConvert  # slow import; only this backend needs it

    if not in_path.is_file():
        raise io.ImageError(in_path, "file not found")
    options = {"resample_type": "nearest", "out_datatype": "int", "no_scale": True} if labels else {}
    with io.atomic_path(out_path) as tmp:
        MRIConvert(conform=True, in_file=str(in_path), out_file=str(tmp), **options).run()
