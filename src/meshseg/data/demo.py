"""The embedded demo cohort: synthetic T1 images with gray/white-matter labels.

Every demo subject is **synthetic**, derived from the MNI ICBM152 2009 nonlinear symmetric
template (release a: the ``mni_icbm152_*_tal_nlin_sym_09a_converted`` files shipped with nilearn)
by a random smooth deformation, bias field, contrast change, noise and an oblique, anisotropic,
off-centre scanner grid (docs/references.md: Demo cohort). Its labels are the template's thresholded
tissue maps, not a manual segmentation: use it to exercise the workflow, never to report anatomy.

The template carries this notice (repeated in the repository's ``NOTICE`` file):

    Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
    Institute, McGill University. Permission to use, copy, modify, and distribute this software
    and its documentation for any purpose and without fee is hereby granted, provided that the
    above copyright notice appear in all copies. The authors and McGill University make no
    representations about the suitability of this software for any purpose. It is provided
    "as is" without express or implied warranty. The authors are not responsible for any data
    loss, equipment damage, property loss, or injury to subjects or patients resulting from the
    use or misuse of this software package.
"""

from __future__ import annotations

import functools
import logging
import os

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from meshseg.image.grid import source_coords
from meshseg.image.io import save_image

log = logging.getLogger(__name__)

# Per-subject randomisation: the calibration cohort (Dice ~0.89; docs/references.md: Demo cohort).
ROTATION_DEG = (3.0, 15.0)  # |angle| about each axis; >= 3 so every subject is oblique
INPLANE_MM = (0.9, 1.1)  # voxel size of the two in-plane axes
THICK_MM = (1.2, 1.5)  # voxel size of the one slice axis, chosen at random
MAX_SHIFT_MM = 15.0  # offset of the grid centre (c_ras) from the brain's centre, per axis
MARGIN_MM = 5.0  # background kept around the deformed brain
MAX_FOV_MM = 260.0  # FreeSurfer's conform gives 256^3 up to 281.6 mm (docs/references.md: Conform)
DISPLACEMENT_MM = (3.0, 5.0)  # largest displacement of the deformation
WARP_SIGMA_MM = 12.0  # smoothness of the deformation: |grad u| < 0.3, so it never folds
BIAS = 0.15  # multiplicative bias field spans 1 +- BIAS
BIAS_SIGMA_MM = 40.0  # smoothness of the bias field
FIELD_SPACING_MM = 4.0  # grid on which the smooth fields live (sampled trilinearly)
GAMMA = (0.8, 1.25)  # contrast change: intensity ** gamma
NOISE = 0.03  # Gaussian noise sd inside the brain, as a fraction of the template maximum
SCANNER_MAX = (1000.0, 3000.0)  # int16 value that the template maximum maps to


@functools.cache
def template() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the template ``(t1, labels, affine, brain_points)``, read-only.

    ``t1`` is float32 scaled to a maximum of 1; ``labels`` is uint8 (0 background, 1 GM,
    2 WM: the larger probability if it is >= 0.5, inside T1 > 0, since the GM map extends
    outside the brain); ``brain_points`` are the world coordinates (N, 3) of T1 > 0.
    """
    from nilearn import datasets  # slow import, needed only here

    t1_img = datasets.load_mni152_template(resolution=1)
    t1 = t1_img.get_fdata(dtype=np.float32)
    gm = _probability(datasets.load_mni152_gm_template(resolution=1))
    wm = _probability(datasets.load_mni152_wm_template(resolution=1))
    brain = t1 > 0
    labels = np.zeros(t1.shape, np.uint8)
    tissue = brain & (np.maximum(gm, wm) >= 0.5)
    labels[tissue] = np.where(wm[tissue] > gm[tissue], 2, 1)
    affine = t1_img.affine
    points = (np.argwhere(brain) @ affine[:3, :3].T + affine[:3, 3]).astype(np.float32)
    arrays = (t1 / t1.max(), labels, affine, points)
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _probability(img: nib.Nifti1Image) -> np.ndarray:
    """A tissue map as float32 in 0-1, whether nilearn gives it as 0-255 or as 0-1."""
    data = img.get_fdata(dtype=np.float32)
    return data / 255.0 if data.max() > 1.0 else data


def _native_grid(
    rng: np.random.Generator, points: np.ndarray, reach_mm: float
) -> tuple[np.ndarray, tuple[int, int, int]]:
    """Draw an oblique, anisotropic, off-centre scanner grid; return its vox2ras and shape.

    The grid covers the brain ``points`` (N, 3) plus ``reach_mm`` (how far the deformation
    may move them) and ``MARGIN_MM`` on every side, within ``MAX_FOV_MM`` per axis.
    """
    angles = rng.uniform(*ROTATION_DEG, size=3) * rng.choice([-1.0, 1.0], size=3)
    rotation = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    zooms = rng.uniform(*INPLANE_MM, size=3)
    zooms[rng.integers(3)] = rng.uniform(*THICK_MM)
    rotated = points @ rotation  # brain in the grid's axes, (N, 3) mm
    low, high = rotated.min(axis=0), rotated.max(axis=0)
    half = (high - low) / 2 + reach_mm + MARGIN_MM
    room = np.minimum(MAX_SHIFT_MM, MAX_FOV_MM / 2 - half)
    if np.any(room < 0):
        raise ValueError(f"brain half-extent {half} mm does not fit a {MAX_FOV_MM} mm FOV")
    shift = rng.uniform(-room, room)
    centre = (low + high) / 2 + shift
    fov_voxels = np.ceil(2 * (half + np.abs(shift)) / zooms)
    shape = np.minimum(fov_voxels, np.floor(MAX_FOV_MM / zooms)).astype(int)
    affine = np.eye(4)
    affine[:3, :3] = rotation * zooms
    # c_ras = affine @ [shape / 2, 1] (FreeSurfer's convention) is the drawn centre.
    affine[:3, 3] = rotation @ centre - affine[:3, :3] @ (shape / 2)
    return affine, tuple(int(n) for n in shape)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_mm: float) -> np.ndarray:
    """Gaussian-smoothed white noise on the field grid, scaled to a maximum |value| of 1."""
    noise = rng.standard_normal(shape)
    field = ndimage.gaussian_filter(noise, sigma_mm / FIELD_SPACING_MM, mode="nearest")
    return (field / np.abs(field).max()).astype(np.float32)


def _deformation(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """Draw a smooth displacement field (3, ...) in mm; return it and its largest norm.

    Its grid spans a template of ``shape`` voxels (1 mm) with ``FIELD_SPACING_MM`` steps.
    """
    grid = tuple(int(np.ceil(n / FIELD_SPACING_MM)) + 1 for n in shape)
    field = np.stack([_smooth_field(rng, grid, WARP_SIGMA_MM) for _ in range(3)])
    reach = rng.uniform(*DISPLACEMENT_MM)
    field *= reach / np.sqrt((field**2).sum(axis=0)).max()
    return field, reach


def _resample(
    fields: np.ndarray,
    native_to_template: np.ndarray,
    shape: tuple[int, int, int],
    rng: np.random.Generator,
    gamma: float,
    scanner_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample the template once onto the native grid, slab by slab (:func:`source_coords`).

    ``fields`` holds the displacement (mm, channels 0-2) and the bias field (channel 3) on
    the field grid. Returns the int16 T1 and the uint8 labels.
    """
    t1, labels, affine, _ = template()
    mm_to_voxels = np.linalg.inv(affine)[:3, :3]
    t1_out = np.zeros(shape, np.int16)
    labels_out = np.zeros(shape, np.uint8)
    # template voxel of each native voxel, then displaced: (3, S, H, D)
    for rows, where in source_coords(native_to_template, tuple(slice(0, n) for n in shape)):
        nodes = where / FIELD_SPACING_MM
        sampled = [ndimage.map_coordinates(f, nodes, order=1, mode="nearest") for f in fields]
        where += np.einsum("ij,j...->i...", mm_to_voxels, np.stack(sampled[:3]))
        intensity = ndimage.map_coordinates(t1, where, order=1, mode="constant", cval=0.0)
        brain = intensity > 0
        intensity = intensity**gamma * (1.0 + BIAS * sampled[3])
        intensity += NOISE * rng.standard_normal(intensity.shape, dtype=np.float32)
        # Keep the skull-stripped brain non-zero and the background exactly zero.
        scaled = np.maximum(np.rint(intensity * scanner_max), 1)
        t1_out[rows] = np.where(brain, scaled, 0)
        labels_out[rows] = ndimage.map_coordinates(labels, where, order=0, cval=0)
    return t1_out, labels_out


def make_demo_subject(
    index: int, seed: int, t1_path: str | os.PathLike, labels_path: str | os.PathLike
) -> None:
    """Write one synthetic demo subject: a T1 (int16) and its GM/WM labels (uint8).

    Parameters
    ----------
    index
        Subject number in the cohort (>= 0); different indices give different subjects.
    seed
        Cohort seed (>= 0); the same ``(seed, index)`` always gives identical voxels and headers.
    t1_path, labels_path
        Output NIfTI files, written atomically with the same native vox2ras affine.

    Notes
    -----
    Each voxel of the native grid is mapped to world, displaced by the smooth deformation,
    and sampled once from the template (trilinear for the T1, nearest neighbour for the
    labels), so there is no double interpolation. The T1 then gets a gamma contrast change,
    a multiplicative bias field, noise inside the brain and a random scanner scale.
    """
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0, got index={index}, seed={seed}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    t1, _, template_affine, points = template()
    displacement, reach = _deformation(rng, t1.shape)
    bias = _smooth_field(rng, displacement.shape[1:], BIAS_SIGMA_MM)
    gamma, scanner_max = rng.uniform(*GAMMA), rng.uniform(*SCANNER_MAX)
    affine, shape = _native_grid(rng, points, reach)
    native_to_template = np.linalg.inv(template_affine) @ affine
    fields = np.concatenate([displacement, bias[None]])
    t1_native, labels_native = _resample(fields, native_to_template, shape, rng, gamma, scanner_max)
    zooms = np.round(np.linalg.norm(affine[:3, :3], axis=0), 2)
    log.info(
        "demo subject %d (seed %d): grid %s, voxels %s mm, displacement <= %.1f mm, "
        "gamma %.2f, scanner max %.0f",
        index,
        seed,
        shape,
        zooms,
        reach,
        gamma,
        scanner_max,
    )
    save_image(t1_native, affine, t1_path)
    save_image(labels_native, affine, labels_path)
