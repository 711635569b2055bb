"""The BIDS-Derivatives dataset of a ``bids`` run: description, label maps, lookup, volumes.

Layout (BIDS 1.10 derivatives; ``<unit>`` is the T1w image's entities, e.g. ``sub-01_ses-2``)::

    dataset_description.json  README  .bidsignore
    desc-<model>_dseg.tsv                    index, name, color of the label set
    desc-<model>_volumes.tsv                 one row per image, one column per structure
    sub-01/ses-2/anat/<unit>_space-T1w_desc-<model>_dseg.nii.gz   (+ .json: Sources, model)
    sub-01/ses-2/anat/<unit>_space-conformed_desc-<model>_dseg.nii.gz  (+ .json)
    sub-01/ses-2/anat/<unit>_desc-<model>_volumes.tsv

BIDS has no suffix for volume tables: ``.bidsignore`` lists ``*_volumes.tsv`` for the validator.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from meshseg import __version__
from meshseg.image.io import atomic_path, file_digest, write_json, write_table, write_text
from meshseg.labels import load_labelset
from meshseg.report.evaluation import volume_table

BIDS_VERSION = "1.10.0"
RAW = "raw"  # the source dataset's name in DatasetLinks and in bids:raw:<path> URIs
CONFORMED = (
    "FreeSurfer's conformed space of the source T1w image (mri_convert -c: 1 mm, LIA, "
    "256^3), zero-padded or cropped to the workflow's volume_size^3: {source}"
)


def write_description(
    out_dir: str | os.PathLike, source: str, checkpoints: Mapping[str, str]
) -> None:
    """``dataset_description.json`` (GeneratedBy: meshseg, its version and every model's
    checkpoint with its sha256; SourceDatasets: the ``source`` dataset's URL), ``README`` and
    ``.bidsignore`` of the derivatives dataset in ``out_dir``."""
    out_dir = Path(out_dir)
    models = [
        {"Name": name, "Checkpoint": str(path), "SHA256": file_digest(path)}
        for name, path in checkpoints.items()
    ]
    description = {
        "Name": "meshseg segmentations",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [
            {
                "Name": "meshseg",
                "Version": __version__,
                "Description": "MeshNet / U-Net brain MRI segmentation; desc-<model> names the "
                "model, Models lists each with its checkpoint and sha256",
                "Models": models,
            }
        ],
        "SourceDatasets": [{"URL": source}],
        "DatasetLinks": {RAW: source},
    }
    write_text(
        "Label maps and structure volumes that meshseg computed from the T1w images of "
        f"{source}: desc-<model> names the model (see dataset_description.json).\n",
        out_dir / "README",
    )
    write_text("*_volumes.tsv\n", out_dir / ".bidsignore")
    write_json(description, out_dir / "dataset_description.json")


def write_lookup(labelset_name: str, path: str | os.PathLike) -> None:
    """The label set as a BIDS ``dseg.tsv``: index (the id in the label maps), name, color."""
    labelset = load_labelset(labelset_name)
    table = pd.DataFrame(
        {
            "index": [c.id for c in labelset.classes],
            "name": labelset.names,
            "color": ["#{:02x}{:02x}{:02x}".format(*c.rgb) for c in labelset.classes],
        }
    )
    write_table(table, path)


def write_dseg(labels: str | os.PathLike, t1: str, space: str, out: Mapping) -> None:
    """Copy a label map to ``out["nifti"]`` and write its sidecar ``out["json"]``.

    ``t1`` is the source T1w image's path in the source dataset (``sub-01/anat/...``), named
    as the BIDS URI ``bids:raw:<t1>``; ``space`` is ``T1w`` (labels on its grid) or
    ``conformed``; ``out`` also names the ``model`` and its ``checkpoint``.
    """
    source = f"bids:{RAW}:{t1}"
    with atomic_path(out["nifti"]) as tmp:
        shutil.copyfile(labels, tmp)
    sidecar = {
        "Description": f"meshseg labels of model {out['model']}, {space} space",
        "Sources": [source],
        "SpatialReference": source if space == "T1w" else CONFORMED.format(source=source),
        "Model": {"Name": out["model"], "SHA256": file_digest(out["checkpoint"])},
    }
    write_json(sidecar, out["json"])


def write_image_volumes(
    labels: str | os.PathLike, labelset_name: str, path: str | os.PathLike
) -> None:
    """index, name, volume_mm3 of every structure (class 0, the background, left out) of a
    conformed label map (1 mm voxels: whole mm^3, written exactly)."""
    table = volume_table(labels, load_labelset(labelset_name))
    table = table[table["class"] != 0]
    volumes = table.rename(columns={"id": "index", "predicted_mm3": "volume_mm3"})
    write_table(volumes[["index", "name", "volume_mm3"]], path, float_format=None)


def write_group_volumes(units: list[str], volumes: list[str], path: str | os.PathLike) -> None:
    """One row per image (``units[i]``, whose volume table is ``volumes[i]``): image,
    participant_id, session_id (when any image has a session), then one column per structure."""
    rows = []
    for unit, table in zip(units, volumes):
        entities = dict(part.split("-", 1) for part in unit.split("_"))
        structures = pd.read_csv(table, sep="\t", keep_default_na=False)
        row = {"image": unit, "participant_id": f"sub-{entities['sub']}"}
        row["session_id"] = f"ses-{entities['ses']}" if "ses" in entities else "n/a"
        rows.append(row | dict(zip(structures["name"], structures["volume_mm3"])))
    table = pd.DataFrame(rows)
    if (table["session_id"] == "n/a").all():
        table = table.drop(columns="session_id")
    write_table(table, path, float_format=None)
