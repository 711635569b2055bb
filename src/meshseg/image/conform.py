"""Conform images as FreeSurfer's ``mri_convert -c`` does (docs/references.md: Conform).

A conformed image is a cube of 1 mm LIA voxels centred on the input's c_ras: uint8 for a T1,
integers for labels. :func:`conform_file` runs :func:`conform` or FreeSurfer's ``mri_convert``.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from meshseg.image import grid, io
from meshseg.image.intensity import intensity_range
from meshseg.labels import integer_labels

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "freesurfer", "python")
_LIA = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # columns: i, j, k
_N_BINS = 1000  # MRIchangeType's N_HIST_BINS
_F_HIGH = np.float32(0.999)  # mri_convert passes f_high as a C float
_TOLERANCE = 1e-4  # of voxel sizes and direction cosines in is_conformed


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
    low, high = intensity_range(values)
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
    than 1e-3 from a whole number), resliced by nearest neighbour
    (:func:`meshseg.image.grid.nearest_index`) and stored as int16 when they fit, else int32
    (``mri_convert -c -rt nearest``).

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
        out = grid.resample(integer_labels(data), vox2vox, (size,) * 3, grid.sample_nearest)
    else:
        out = grid.resample(uchar_scale(data), vox2vox, (size,) * 3, _trilinear_uchar)
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
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    labels: bool = False,
    backend: str = "auto",
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
    samples = ndimage.map_coordinates(
        volume, coords, output=np.float64, order=1, mode="grid-constant"
    )
    return _to_uchar(samples)


def _run_mri_convert(in_path: Path, out_path: Path, labels: bool) -> None:
    """``mri_convert --conform`` through nipype into a temporary file renamed to ``out_path``."""
    from nipype.interfaces.freesurfer import MRIConvert  # slow import; only this backend needs it

    if not in_path.is_file():
        raise io.ImageError(in_path, "file not found")
    options = (
        {"resample_type": "nearest", "out_datatype": "int", "no_scale": True} if labels else {}
    )
    with io.atomic_path(out_path) as tmp:
        MRIConvert(conform=True, in_file=str(in_path), out_file=str(tmp), **options).run()
