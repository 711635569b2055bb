"""File-level preparation of a conformed volume: pad to a cube, normalise intensities."""

from __future__ import annotations

import logging
import os

import numpy as np

from meshseg.intensity import minmax_normalise, pad_to_cube
from meshseg.io import ImageError, load_volume, save_image

log = logging.getLogger(__name__)


def prepare_file(in_path: str | os.PathLike, out_path: str | os.PathLike, size: int = 256,
                 labels: bool = False) -> None:
    """Pad ``in_path`` to ``size``^3; T1s are also min-max normalised to float32 [0, 1]."""
    data, affine = load_volume(in_path)
    if labels:
        if data.dtype.kind == "f" and not np.allclose(data, np.rint(data), atol=1e-3):
            raise ImageError(in_path, "label image holds non-integer values")
        data = np.rint(data).astype(np.int32) if data.dtype.kind == "f" else data
    elif data.min() == data.max():  # checked before padding adds zeros to it
        raise ImageError(in_path, f"constant image (every voxel is {data.min()}): nothing to segment")
    padded, affine = pad_to_cube(data, affine, size)
    if not labels:
        padded = minmax_normalise(padded)
    save_image(padded, affine, out_path)
    log.info("%s -> %s, shape %s", in_path, out_path, padded.shape)
