"""File-level preparation of a conformed volume: pad to a cube, normalise intensities."""

from __future__ import annotations

import logging
import os

from meshseg.image.intensity import intensity_range, minmax_normalise, pad_to_cube
from meshseg.image.io import ImageError, load_volume, save_image

log = logging.getLogger(__name__)


def prepare_file(
    in_path: str | os.PathLike, out_path: str | os.PathLike, size: int = 256, labels: bool = False
) -> None:
    """Pad ``in_path`` to ``size``^3; T1s are also min-max normalised to float32 [0, 1]."""
    data, affine = load_volume(in_path, labels=labels)
    padded, affine = pad_to_cube(data, affine, size)
    if not labels:
        try:
            intensity_range(data)  # the input's: padding adds zeros to it
        except ValueError as err:
            raise ImageError(in_path, str(err)) from None
        padded = minmax_normalise(padded)
    save_image(padded, affine, out_path)
    log.info("%s -> %s, shape %s", in_path, out_path, padded.shape)
