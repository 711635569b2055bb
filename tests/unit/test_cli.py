import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from meshseg.cli import main
from meshseg.data.demo import make_demo_subject
from meshseg.image.io import save_image
from meshseg.nn.export import onnx_labels
from meshseg.pipeline import OUTPUTS
from tests.conftest import tiny_checkpoint
from tests.unit.test_native import assert_same_grid
from tests.unit.test_tfjs import random_model


def test_conform_command_writes_a_conformed_image(tmp_path):
    data = np.zeros((20, 20, 20), np.int16)
    data[5:15, 5:15, 5:15] = 1000
    save_image(data, np.diag([1.2, 1.0, 1.0, 1.0]), tmp_path / "in.nii.gz")
    assert (
        main(
            [
                "conform",
                str(tmp_path / "in.nii.gz"),
                str(tmp_path / "out.nii.gz"),
                "--backend",
                "python",
            ]
        )
        == 0
    )
    out = nib.load(tmp_path / "out.nii.gz")
    assert out.shape == (256, 256, 256) and out.get_data_dtype() == np.uint8
    assert np.asarray(out.dataobj).max() == 255


def test_dice_command_prints_a_table(tmp_path, capsys):
    labels = np.array([0, 1, 2, 2]).reshape(1, 2, 2)
    save_image(labels.astype(np.uint8), np.eye(4), tmp_path / "a.nii.gz")
    assert (
        main(
            [
                "dice",
                str(tmp_path / "a.nii.gz"),
                str(tmp_path / "a.nii.gz"),
                "--labelset",
                "demo_gwm",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["class", "id", "name", "dice", "predicted_mm3", "true_mm3"]
    assert lines[3].split("\t")[2:4] == ["white-matter", "1.0000"]


def test_errors_are_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b garbage")
    assert main(["conform", str(tmp_path / "broken.nii.gz"), str(tmp_path / "out.nii.gz")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "broken.nii.gz: not a readable" in err
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.fixture(scope="module")
def demo_t1(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    make_demo_subject(2, 0, folder / "sub-02_T1w.nii.gz", folder / "labels.nii.gz")
    return folder / "sub-02_T1w.nii.gz"


def test_segment_command_writes_every_output_on_the_t1_grid(tmp_path, demo_t1):
    checkpoint = tiny_checkpoint(
        tmp_path / "c.pt", overrides={"channels": 2, "dilations": [1, 2]}
    )  # fast
    args = [
        "segment",
        str(demo_t1),
        "--model",
        str(checkpoint),
        "-o",
        str(tmp_path / "out"),
        "--mode",
        "whole",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--backend",
        "python",
    ]
    assert main(args) == 0
    folder = tmp_path / "out" / "sub-02_T1w"
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUTS.values())
    native, t1 = nib.load(folder / "labels_native.nii.gz"), nib.load(demo_t1)
    assert_same_grid(native.header, t1.header)
    assert native.get_data_dtype() == np.uint8
    assert nib.load(folder / "labels_conformed.nii.gz").shape == (256, 256, 256)
    volumes = pd.read_csv(folder / "volumes.tsv", sep="\t")
    assert volumes["name"].tolist() == ["Unknown", "gray-matter", "white-matter"]
    assert volumes["predicted_mm3"].sum() == pytest.approx(
        256**3, rel=1e-5
    )  # 1 mm^3 voxels, 6 digits
    assert json.loads((folder / "inference.json").read_text())["mode"] == "whole"


def write_bad_input(path, kind):
    affine = np.diag([1.0, 1.0, 1.2, 1.0])
    if kind == "4-D":
        save_image(np.ones((8, 8, 8, 2), np.int16), affine, path)
    elif kind == "2-D":
        save_image(np.ones((8, 8), np.int16), affine, path)
    elif kind == "NaN":
        data = np.ones((8, 8, 8), np.float32)
        data[2, 3, 4] = np.nan
        save_image(data, affine, path)
    elif kind == "constant":
        save_image(np.full((8, 8, 8), 7, np.int16), affine, path)
    else:
        path.write_text("this is not an image\n")


@pytest.mark.parametrize(
    "kind,problem",
    [
        ("4-D", "expected a 3-D image"),
        ("2-D", "expected a 3-D image"),
        ("NaN", "NaN or Inf"),
        ("constant", "constant image"),
        ("text", "not a readable NIfTI"),
    ],
)
def test_segment_rejects_bad_input_in_one_line(tmp_path, capsys, kind, problem):
    bad = tmp_path / "bad.nii.gz"
    write_bad_input(bad, kind)
    checkpoint = tiny_checkpoint(tmp_path / "c.pt")
    assert main(["segment", str(bad), "--model", str(checkpoint), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{bad}: " in err and problem in err
    assert not (tmp_path / "out").exists()


def test_export_command_writes_an_onnx_file(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path / "c.pt")
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "m.onnx")]) == 0
    labels = onnx_labels(tmp_path / "m.onnx", np.zeros((1, 1, 12, 10, 8), np.float32))
    assert labels.shape == (1, 12, 10, 8)


def test_an_imported_brainchop_model_segments_and_exports(tmp_path, demo_t1, capsys):
    random_model(tmp_path / "tfjs", activation="elu")
    checkpoint = tmp_path / "imported.pt"
    assert main(["import", "brainchop", str(tmp_path / "tfjs"), "-o", str(checkpoint)]) == 0
    args = ["segment", str(demo_t1), "--model", str(checkpoint), "-o", str(tmp_path / "out")]
    assert main([*args, "--device", "cpu", "--precision", "fp32", "--backend", "python"]) == 0
    folder = tmp_path / "out" / "sub-02_T1w"
    assert json.loads((folder / "inference.json").read_text())["mode"] == "whole"  # auto
    assert main(["export", str(checkpoint), "--format", "tfjs", "-o", str(tmp_path / "back")]) == 0
    assert (tmp_path / "back" / "model.json").is_file()
    assert main(["export", str(checkpoint), "-o", str(tmp_path / "m.onnx")]) == 0
    batch = np.random.default_rng(0).random((1, 1, 12, 10, 8), dtype=np.float32)
    assert onnx_labels(tmp_path / "m.onnx", batch).shape == (1, 12, 10, 8)
    (tmp_path / "tfjs" / "model.json").write_text("{")
    assert main(["import", "brainchop", str(tmp_path / "tfjs"), "-o", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{tmp_path / 'tfjs' / 'model.json'}: not readable JSON" in err
    assert not (tmp_path / "x.pt").exists()
