"""Reading and writing images: the only module that opens NIfTI files.

Every reader checks what it was given and raises :class:`ImageError` with the file name and
the problem in one line; every writer writes to a temporary file in the destination folder
and renames it, so a killed job never leaves a partial file under the final name. A failed
write (folder not writable, disk full) raises :class:`OutputError` naming the final file.

The temporary file is ``.<name>.part-<host>-<pid>-<random><suffixes>`` beside ``<name>``. A
job killed with SIGKILL cannot remove it; the next write of ``<name>`` on the same host
removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from meshseg.labels import integer_labels

log = logging.getLogger(__name__)


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class OutputError(OSError):
    """A file that could not be written (folder not writable, disk full); names the file."""

    def __init__(self, path: str | os.PathLike, problem: str, code: int | None = None) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
        self.errno = code  # str() stays the one-line message: strerror is not set


def load_image(path: str | os.PathLike, labels: bool = False) -> nib.Nifti1Image:
    """Load a 3-D NIfTI/MGZ image and check it can be processed.

    Parameters
    ----------
    path
        File to read.
    labels
        The file is a label map: its ids become integers by the one policy for labels,
        :func:`meshseg.labels.integer_labels` (floats within 1e-3 of whole numbers rounded).

    Returns
    -------
    The image with its data loaded. A 4-D image with one volume is squeezed to 3-D.

    Raises
    ------
    ImageError
        Missing, unreadable or truncated file; not 3-D; NaN or Inf voxels; for ``labels``,
        ids that are not whole numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "file not found")
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for bad files
        raise ImageError(
            path, f"not a readable NIfTI/MGZ image ({type(err).__name__}: {err})"
        ) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ImageError(path, f"expected a 3-D image, got shape {data.shape}")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        raise ImageError(path, f"{int((~np.isfinite(data)).sum())} voxels are NaN or Inf")
    if labels:
        try:
            data = integer_labels(data)
        except ValueError as err:
            raise ImageError(path, str(err)) from None
    return _nifti(data, img.affine)


def load_volume(path: str | os.PathLike, labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(data, affine)`` of a checked 3-D image (see :func:`load_image`)."""
    img = load_image(path, labels)
    return np.asanyarray(img.dataobj), img.affine


def check_same_grid(
    path: str | os.PathLike,
    shape: tuple[int, ...],
    affine: np.ndarray,
    other_path: str | os.PathLike,
    other_shape: tuple[int, ...],
    other_affine: np.ndarray,
) -> None:
    """Raise :class:`ImageError` naming both files unless their shapes and affines agree.

    Affines agree within 1e-3 (mm, or direction-cosine units).
    """
    if tuple(shape) != tuple(other_shape):
        raise ImageError(
            path,
            f"shape {tuple(shape)} differs from {tuple(other_shape)} of "
            f"{other_path}; both must be on the same voxel grid",
        )
    if not np.allclose(affine, other_affine, atol=1e-3):
        worst = float(np.abs(np.asarray(affine) - np.asarray(other_affine)).max())
        raise ImageError(
            path,
            f"affine differs from that of {other_path} (by up to {worst:.3g}); "
            "both must be on the same voxel grid",
        )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success.

    The temporary name keeps the final suffixes (``.nii.gz``) so writers pick the right format;
    it is removed whatever happens in the block, except on SIGKILL (see the module docstring).

    Raises
    ------
    OutputError
        The folder cannot be created or written, or an ``OSError`` (disk full, ...) escaped the
        block; nothing is left under ``path`` or the temporary name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(
            path,
            f"cannot create the output folder {path.parent} ({err.strerror or err})",
            err.errno,
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(path, f"output folder {path.parent} is not writable", errno.EACCES)
    _remove_stale_parts(path)
    suffix = "".join(path.suffixes)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=_part_prefix(path) + f"{_HOST}-{os.getpid()}-", suffix=suffix, dir=path.parent
        )
    except OSError as err:
        raise OutputError(
            path, f"cannot write in {path.parent} ({err.strerror or err})", err.errno
        ) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        if isinstance(err, OutputError):
            raise
        raise OutputError(path, f"not written ({err.strerror or err})", err.errno) from None
    finally:
        tmp_path.unlink(missing_ok=True)


_HOST = socket.gethostname().split(".")[0].replace("-", "_") or "host"


def _part_prefix(path: Path) -> str:
    """Start of the temporary names of ``path``: ``.<name>.part-``."""
    return f".{path.name}.part-"


def _remove_stale_parts(path: Path) -> None:
    """Delete temporary files of ``path`` left on this host by processes that no longer run."""
    prefix = _part_prefix(path)
    for part in path.parent.iterdir():
        if not part.name.startswith(prefix):
            continue
        host, _, rest = part.name[len(prefix) :].partition("-")
        pid = rest.partition("-")[0]
        if host == _HOST and pid.isdigit() and not _running(int(pid)):
            part.unlink(missing_ok=True)
            log.info("%s: removed %s, left by a killed process", path, part.name)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def save_image(data: np.ndarray, affine: np.ndarray, path: str | os.PathLike) -> None:
    """Write ``data`` with ``affine`` (qform and sform) to ``path`` atomically."""
    img = _nifti(data, affine)
    with atomic_path(path) as tmp:
        nib.save(img, tmp)


def _nifti(data: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image whose qform and sform both hold ``affine`` (scanner space)."""
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(data: object, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically."""
    write_text(json.dumps(data, indent=2) + "\n", path)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``hashlib`` algorithm name)."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, algorithm).hexdigest()


def write_table(
    table: pd.DataFrame, path: str | os.PathLike, float_format: str | None = "%.6g"
) -> None:
    """Write a table as TSV (atomically), floats as ``float_format`` (None: shortest exact)."""
    write_text(table.to_csv(sep="\t", index=False, float_format=float_format), path)
