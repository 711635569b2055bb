import pytest

from meshseg.data.subjects import read_subject_sheet


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
