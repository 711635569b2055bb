"""The BIDS-Derivatives files of a bids run (meshseg.report.bids), written without Snakemake."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from meshseg import __version__
from meshseg.image.io import save_image
from meshseg.labels import load_labelset
from meshseg.report.bids import (
    write_description,
    write_dseg,
    write_group_volumes,
    write_image_volumes,
    write_lookup,
)
from tests.conftest import small_t1


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_description_names_meshseg_its_models_and_the_source(tmp_path):
    checkpoint = tmp_path / "models" / "meshnet.pt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    out = tmp_path / "bids" / "derivatives" / "meshseg"
    source = (tmp_path / "bids").as_uri()
    write_description(out, source, {"meshnet": str(checkpoint)})
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    (generated,) = description["GeneratedBy"]
    assert (generated["Name"], generated["Version"]) == ("meshseg", __version__)
    assert generated["Models"] == [
        {"Name": "meshnet", "Checkpoint": str(checkpoint), "SHA256": sha256(checkpoint)}
    ]
    assert description["SourceDatasets"] == [{"URL": source}]
    assert (out / ".bidsignore").read_text() == "*_volumes.tsv\n"
    assert (out / "README").read_text().strip()


def test_the_lookup_lists_every_class_with_its_id_and_colour(tmp_path):
    write_lookup("demo_gwm", tmp_path / "desc-meshnet_dseg.tsv")
    table = pd.read_csv(tmp_path / "desc-meshnet_dseg.tsv", sep="\t", keep_default_na=False)
    labelset = load_labelset("demo_gwm")
    assert list(table.columns) == ["index", "name", "color"]
    assert table["index"].tolist() == [c.id for c in labelset.classes]
    assert table["name"].tolist() == labelset.names
    assert table["color"].tolist() == [
        "#" + "".join(f"{v:02x}" for v in c.rgb) for c in labelset.classes
    ]


def test_a_dseg_is_the_label_map_with_a_sidecar_naming_its_source(tmp_path):
    t1 = "sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz"
    labels = small_t1(tmp_path / "labels_native.nii.gz", dtype=np.uint8)
    checkpoint = tmp_path / "meshnet.pt"
    checkpoint.write_bytes(b"weights")
    out = {
        "nifti": tmp_path / "out" / "sub-01_ses-2_space-T1w_desc-meshnet_dseg.nii.gz",
        "json": tmp_path / "out" / "sub-01_ses-2_space-T1w_desc-meshnet_dseg.json",
        "model": "meshnet",
        "checkpoint": str(checkpoint),
    }
    write_dseg(labels, t1, "T1w", out)
    assert out["nifti"].read_bytes() == labels.read_bytes()
    sidecar = json.loads(out["json"].read_text())
    source = f"bids:raw:{t1}"
    assert sidecar["Sources"] == [source] and sidecar["SpatialReference"] == source
    assert sidecar["Model"] == {"Name": "meshnet", "SHA256": sha256(checkpoint)}
    write_dseg(labels, t1, "conformed", out)
    conformed = json.loads(out["json"].read_text())["SpatialReference"]
    assert conformed != source and conformed.endswith(source) and "conformed" in conformed


def test_an_images_volumes_are_each_structures_voxels_times_their_size(tmp_path):
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[:2] = 1
    labels[2:5, :3] = 2
    save_image(labels, np.diag([2.0, 1.0, 1.5, 1.0]), tmp_path / "labels.nii.gz")
    write_image_volumes(tmp_path / "labels.nii.gz", "demo_gwm", tmp_path / "volumes.tsv")
    table = pd.read_csv(tmp_path / "volumes.tsv", sep="\t")
    assert table["name"].tolist() == ["gray-matter", "white-matter"]  # no background row
    assert table["index"].tolist() == [1, 2]
    expected = [(labels == i).sum() * 3.0 for i in (1, 2)]
    assert table["volume_mm3"].tolist() == pytest.approx(expected, rel=1e-12)


def write_volumes(path, values: list[float]) -> str:
    table = pd.DataFrame({"index": [1, 2], "name": ["gray", "white"], "volume_mm3": values})
    table.to_csv(path, sep="\t", index=False)
    return str(path)


def test_the_group_table_has_a_row_per_image_and_a_column_per_structure(tmp_path):
    units = ["sub-01_ses-1", "sub-01_ses-2", "sub-02_run-1"]
    volumes = [write_volumes(tmp_path / f"{u}.tsv", [i, 10.5 * i]) for i, u in enumerate(units)]
    write_group_volumes(units, volumes, tmp_path / "group.tsv")
    table = pd.read_csv(tmp_path / "group.tsv", sep="\t", keep_default_na=False)
    assert list(table.columns) == ["image", "participant_id", "session_id", "gray", "white"]
    assert table["image"].tolist() == units
    assert table["participant_id"].tolist() == ["sub-01", "sub-01", "sub-02"]
    assert table["session_id"].tolist() == ["ses-1", "ses-2", "n/a"]
    assert table["white"].tolist() == [0.0, 10.5, 21.0]


def test_the_group_table_has_no_session_column_without_sessions(tmp_path):
    units = ["sub-01", "sub-02_run-1"]
    volumes = [write_volumes(tmp_path / f"{u}.tsv", [1.0, 2.0]) for u in units]
    write_group_volumes(units, volumes, tmp_path / "group.tsv")
    assert "session_id" not in pd.read_csv(tmp_path / "group.tsv", sep="\t").columns
