import nibabel as nib
import numpy as np

from meshseg.cli import main
from meshseg.io import save_image


def test_conform_command_writes_a_conformed_image(tmp_path):
    data = np.zeros((20, 20, 20), np.int16)
    data[5:15, 5:15, 5:15] = 1000
    save_image(data, np.diag([1.2, 1.0, 1.0, 1.0]), tmp_path / "in.nii.gz")
    assert main(["conform", str(tmp_path / "in.nii.gz"), str(tmp_path / "out.nii.gz"), "--backend", "python"]) == 0
    out = nib.load(tmp_path / "out.nii.gz")
    assert out.shape == (256, 256, 256) and out.get_data_dtype() == np.uint8
    assert np.asarray(out.dataobj).max() == 255


def test_dice_command_prints_a_table(tmp_path, capsys):
    labels = np.array([0, 1, 2, 2]).reshape(1, 2, 2)
    save_image(labels.astype(np.uint8), np.eye(4), tmp_path / "a.nii.gz")
    assert main(["dice", str(tmp_path / "a.nii.gz"), str(tmp_path / "a.nii.gz"), "--labelset", "demo_gwm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["class", "id", "name", "dice", "predicted_mm3", "true_mm3"]
    assert lines[3].split("\t")[2:4] == ["white-matter", "1.0000"]


def test_errors_are_one_line_naming_the_file(tmp_path, capsys):
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8b garbage")
    assert main(["conform", str(tmp_path / "broken.nii.gz"), str(tmp_path / "out.nii.gz")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "broken.nii.gz: not a readable" in err
    assert not (tmp_path / "out.nii.gz").exists()
