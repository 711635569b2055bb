"""Labels sent native -> conformed -> prepared -> native come back unchanged, on real grid families.

Real scans are axis-aligned RAS/LAS/LPI/LIA grids of odd or even size (the 197x233x189 ICBM
template, HCP's 260x311x260) where every conformed voxel centre falls exactly half-way between
two native voxel centres on an odd axis: the rounding of those ties must agree both ways.
"""

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from meshseg.image.conform import conform_file
from meshseg.image.native import labels_to_native
from meshseg.image.preprocess import prepare_file

_DIRECTIONS = {
    "R": (1, 0, 0),
    "L": (-1, 0, 0),
    "A": (0, 1, 0),
    "P": (0, -1, 0),
    "S": (0, 0, 1),
    "I": (0, 0, -1),
}
SCANNER_OFFSET = np.array([-97.31, -131.17, -70.61])  # mm, not a multiple of the voxel size


def grid_affine(axcodes: str, zoom: float, shape, offset=SCANNER_OFFSET) -> np.ndarray:
    """Vox2ras of an axis-aligned grid whose axes point along ``axcodes``, centred near offset."""
    affine = np.eye(4)
    affine[:3, :3] = np.array([_DIRECTIONS[code] for code in axcodes], float).T * zoom
    affine[:3, 3] = offset - affine[:3, :3] @ (np.array(shape) / 2) + 98.0
    return affine


def round_trip(tmp_path, labels: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The labels after conform_file -> prepare_file -> labels_to_native, as a NIfTI file would."""
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "labels.nii.gz")
    conform_file(
        tmp_path / "labels.nii.gz", tmp_path / "conformed.nii.gz", labels=True, backend="python"
    )
    prepare_file(tmp_path / "conformed.nii.gz", tmp_path / "prepared.nii.gz", labels=True)
    labels_to_native(
        tmp_path / "prepared.nii.gz", tmp_path / "labels.nii.gz", tmp_path / "native.nii.gz"
    )
    return np.asarray(nib.load(tmp_path / "native.nii.gz").dataobj)


def random_labels(shape, seed=0) -> np.ndarray:
    """Independent random ids per voxel: any voxel moved by one shows."""
    return np.random.default_rng(seed).integers(1, 6, shape).astype(np.int16)


def shell_labels(shape, affine) -> np.ndarray:
    """Smooth labels in world space: 5 mm shells around the grid's centre, ids 1-4."""
    world = np.indices(shape).reshape(3, -1).T @ affine[:3, :3].T + affine[:3, 3]
    centre = affine[:3, :3] @ (np.array(shape) / 2) + affine[:3, 3]
    shells = (np.linalg.norm(world - centre, axis=1) // 5).astype(np.int16) % 4 + 1
    return shells.reshape(shape)


@pytest.mark.parametrize(
    "shape", [(61, 73, 57), (60, 72, 56), (61, 72, 57)], ids=["odd", "even", "mixed"]
)
@pytest.mark.parametrize("axcodes", ["RAS", "LAS", "LPI", "LIA", "PSR"])
def test_axis_aligned_1mm_is_exact(tmp_path, shape, axcodes):
    labels = random_labels(shape)
    np.testing.assert_array_equal(
        round_trip(tmp_path, labels, grid_affine(axcodes, 1.0, shape)), labels
    )


@pytest.mark.parametrize(
    "offset", [(-98.0, -134.0, -72.0), tuple(SCANNER_OFFSET)], ids=["template", "scanner"]
)
def test_icbm_template_grid_is_exact(tmp_path, offset):
    """nilearn's ICBM152 grid (197x233x189, RAS, 1 mm), as shipped and with a scanner offset."""
    shape = (197, 233, 189)
    affine = np.eye(4)
    affine[:3, 3] = offset
    labels = random_labels(shape)
    np.testing.assert_array_equal(round_trip(tmp_path, labels, affine), labels)


@pytest.mark.parametrize("zoom", [0.8, 1.2])
@pytest.mark.parametrize("axcodes", ["RAS", "LIA"])
def test_other_voxel_sizes_keep_smooth_labels(tmp_path, zoom, axcodes):
    """Not a bijection: report the agreement, which is high for structures larger than a voxel."""
    shape = (61, 72, 57)
    affine = grid_affine(axcodes, zoom, shape)
    labels = shell_labels(shape, affine)
    agreement = float((round_trip(tmp_path, labels, affine) == labels).mean())
    print(f"{axcodes} {zoom} mm: {agreement:.4f} of voxels agree")
    assert agreement > 0.85


def test_oblique_grid_keeps_smooth_labels(tmp_path):
    shape = (61, 72, 57)
    affine = grid_affine("RAS", 1.0, shape)
    affine[:3, :3] = (
        Rotation.from_euler("xyz", [8, -5, 12], degrees=True).as_matrix() @ affine[:3, :3]
    )
    labels = shell_labels(shape, affine)
    agreement = float((round_trip(tmp_path, labels, affine) == labels).mean())
    print(f"oblique 1 mm: {agreement:.4f} of voxels agree")
    assert agreement > 0.85
