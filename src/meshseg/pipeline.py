"""Segment a new T1 end to end with the functions the workflow's rules call.

conform -> prepare (pad, normalise) -> inference -> labels back on the T1's own grid ->
volumes. Every step writes its file into ``OUT/<subject>/`` (kept for quality control)::

    t1_conformed.nii.gz    1 mm LIA uint8 cube (conform)
    t1_prepared.nii.gz     padded to 256^3, intensities in [0, 1] (the network's input)
    labels_conformed.nii.gz  predicted label ids on the prepared grid
    labels_lut.txt         FreeSurfer colour table of those ids
    labels_native.nii.gz   the same ids on the T1's grid, with the T1's header
    volumes.tsv            mm^3 per class, measured on labels_conformed (1 mm voxels, before
                           resampling to the T1's grid)
    inference.json         mode, vote rule, seconds, subvolumes, device
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from meshseg.image.conform import conform_file
from meshseg.image.intensity import intensity_range
from meshseg.image.io import ImageError, load_volume, write_table
from meshseg.image.native import labels_to_native, native_header
from meshseg.image.preprocess import prepare_file
from meshseg.nn.checkpoint import LoadedModel
from meshseg.nn.inference import InferenceConfig, LabelFiles, check_model, segment_file
from meshseg.nn.runtime import Compute
from meshseg.report.evaluation import volume_table

log = logging.getLogger(__name__)

OUTPUTS = {
    "t1_conformed": "t1_conformed.nii.gz",
    "t1_prepared": "t1_prepared.nii.gz",
    "labels_conformed": "labels_conformed.nii.gz",
    "lut": "labels_lut.txt",
    "labels_native": "labels_native.nii.gz",
    "volumes": "volumes.tsv",
    "stats": "inference.json",
}


def subject_name(t1_path: str | os.PathLike) -> str:
    """The file name without ``.nii.gz`` or ``.nii``: ``sub-01_T1w.nii.gz`` -> ``sub-01_T1w``."""
    name = Path(t1_path).name
    return name.removesuffix(".gz").removesuffix(".nii")


def check_t1(t1_path: str | os.PathLike) -> None:
    """Raise ImageError (one line naming the file) unless ``t1_path`` can be segmented.

    It must be a readable 3-D NIfTI image (a trailing singleton fourth dimension is allowed)
    without NaN or Inf voxels, and not constant.
    """
    data, _ = load_volume(t1_path)  # readable, 3-D, finite
    native_header(t1_path)  # NIfTI: labels_native copies its header
    try:
        intensity_range(data)
    except ValueError as err:
        raise ImageError(t1_path, str(err)) from None


def segment_t1(
    t1_path: str | os.PathLike,
    loaded: LoadedModel,
    out_dir: str | os.PathLike,
    config: InferenceConfig,
    compute: Compute,
    backend: str = "auto",
) -> dict:
    """Segment one T1 into ``out_dir/<subject>/`` (see the module docstring).

    The input and the model are checked before any file is written; ``backend`` is the
    conform backend. Crops are the checkpoint's training patch. Returns the subject name, the
    output paths and the inference statistics.
    """
    check_t1(t1_path)
    check_model(loaded, config)
    subject = subject_name(t1_path)
    files = {key: Path(out_dir) / subject / name for key, name in OUTPUTS.items()}

    conform_file(t1_path, files["t1_conformed"], backend=backend)
    prepare_file(files["t1_conformed"], files["t1_prepared"])
    stats = segment_file(
        loaded,
        files["t1_prepared"],
        LabelFiles(files["labels_conformed"], files["lut"], files["stats"]),
        config,
        compute,
    )
    labels_to_native(files["labels_conformed"], t1_path, files["labels_native"])
    write_table(volume_table(files["labels_conformed"], loaded.labelset), files["volumes"])
    log.info("%s: segmented into %s", t1_path, files["labels_native"].parent)
    return {
        "subject": subject,
        "files": {key: str(path) for key, path in files.items()},
        "inference": stats,
    }
