"""File-level preparation of a conformed volume: pad to a cube, normalise intensities."""

from __future__ import annotations

import logging
import os

from meshseg.image.intensity import minmax_normalise, pad_to_cube
from meshseg.image.io import ImageError, load_volume, save_image
from meshseg.labels import integer_labels

log = logging.getLogger(__name__)


def prepare_file(in_path: str | os.PathLike, out_path: str | os.PathLike, size: int = 256,
                 labels: bool = False) -> None:
    """Pad ``in_path`` to ``size``^3; T1s are also min-max normalised to float32 [0, 1]."""
    data, affine = load_volume(in_path)
    if labels:
        try:
            data = integer_labels(data)
        except ValueError as err:
            raise ImageError(in_path, str(err)) from None
    elif data.min() == data.max():  # checked before padding adds zeros to it
        raise ImageError(in_path, f"constant image (every voxel is {data.min()}): nothing to segment")
    padded, affine = pad_to_cube(data, affine, size)
    if not labels:
        padded = minmax_normalise(padded)
    save_image(padded, affine, out_path)
    log.info("%s -> %s, shape %s", in_path, out_path, padded.shape)
