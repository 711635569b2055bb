import numpy as np
import pytest

from meshseg.data.subjects import read_subject_sheet
from meshseg.image.conform import conform_file
from meshseg.image.io import ImageError, save_image
from meshseg.labels import load_labelset
from meshseg.nn.crops import load_volumes
from tests.conftest import fails_cleanly, sphere_volume


def write(tmp_path, text):
    path = tmp_path / "subjects.tsv"
    path.write_text(text)
    return path


def test_demo_sheet_is_5_1_2():
    sheet = read_subject_sheet("config/subjects.tsv")
    assert sheet["split"].value_counts().to_dict() == {"train": 5, "validation": 1, "test": 2}
    assert sheet.index.is_unique


@pytest.mark.parametrize(
    "text,problem",
    [
        ("subject\tcohort\tsplit\n", "no subjects"),
        ("", "cannot read"),
        ("subject\tcohort\n", "lacks columns"),
        ("subject\tcohort\tsplit\na\tc\ttrain\na\tc\ttest\n", "more than once"),
        ("subject\tcohort\tsplit\na\tc\ttraining\n", "unknown split"),
        ("subject\tcohort\tsplit\na\tc\ttest\n", "no subject has split 'train'"),
    ],
)
def test_bad_sheets_name_the_file_and_problem(tmp_path, text, problem):
    with pytest.raises(ValueError, match=f"subjects.tsv: .*{problem}"):
        read_subject_sheet(write(tmp_path, text))


@pytest.mark.parametrize("missing", ["t1", "labels", "sheet"])
def test_missing_subject_file_fails_naming_the_file(tmp_path, missing):
    out = tmp_path / "out"
    if missing == "sheet":
        path = tmp_path / "subjects.tsv"
        with pytest.raises(
            ValueError, match=rf"^{path}: cannot read the subject sheet .*No such file"
        ):
            read_subject_sheet(path)
    elif missing == "t1":
        path = tmp_path / "sub-1" / "t1weighted.nii.gz"
        fails_cleanly(
            lambda: conform_file(path, out / "t1.nii.gz", backend="python"),
            path,
            "file not found",
            out,
        )
    else:
        image, _ = sphere_volume(size=8)
        save_image(image, np.eye(4), tmp_path / "t1.nii.gz")
        path = tmp_path / "sub-1" / "labels.nii.gz"
        with pytest.raises(ImageError, match=rf"^{path}: file not found$"):
            load_volumes([tmp_path / "t1.nii.gz"], [path], load_labelset("demo_gwm"))
