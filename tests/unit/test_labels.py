import numpy as np
import pytest

from meshseg.labels import (
    LabelClass,
    LabelSet,
    available_labelsets,
    class_dtype,
    count_values,
    largest_component,
    load_labelset,
    smallest_int_dtype,
)


def test_demo_set_maps_ids_to_classes_and_back():
    labelset = load_labelset("demo_gwm")
    assert labelset.names == ["Unknown", "gray-matter", "white-matter"]
    ids = np.array([[0, 1], [2, 2]])
    classes = labelset.to_classes(ids)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(labelset.to_ids(classes), ids)


def test_classes_with_several_source_ids_and_freesurfer_ids():
    labelset = LabelSet(
        "t",
        (
            LabelClass(0, 0, "bg", (0, 0, 0), (0,)),
            LabelClass(1, 3, "cortex", (1, 2, 3), (3, 42, 1002, 2035)),
        ),
    )
    ids = np.array([0, 3, 42, 1002, 2035])
    np.testing.assert_array_equal(labelset.to_classes(ids), [0, 1, 1, 1, 1])
    np.testing.assert_array_equal(labelset.to_ids(np.array([0, 1])), [0, 3])


def test_unknown_ids_are_reported_with_counts():
    labelset = load_labelset("demo_gwm")
    with pytest.raises(ValueError, match=r"sub-1\.nii\.gz.*\{7: 2\}"):
        labelset.to_classes(np.array([0, 7, 7, 1]), source="sub-1.nii.gz")


def test_lut_is_freesurfer_format():
    lines = [
        line.split()
        for line in load_labelset("demo_gwm").lut_text().splitlines()
        if not line.startswith("#")
    ]
    assert lines[2] == ["2", "white-matter", "245", "245", "245", "0"]


def test_round_trip_through_checkpoint_dict():
    labelset = load_labelset("demo_gwm")
    assert LabelSet.from_dict(labelset.to_dict()) == labelset


def test_invalid_sets_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="listed more than once"):
        LabelSet(
            "t", (LabelClass(0, 0, "a", (0, 0, 0), (0,)), LabelClass(1, 1, "b", (0, 0, 0), (0,)))
        )
    with pytest.raises(ValueError, match="0..n-1"):
        LabelSet("t", (LabelClass(1, 0, "a", (0, 0, 0), (0,)),))
    with pytest.raises(ValueError, match="shipped sets"):
        load_labelset("no-such-set")
    bad = tmp_path / "bad.tsv"
    bad.write_text("class\tname\n0\tx\n")
    with pytest.raises(ValueError, match="bad.tsv: label set columns"):
        load_labelset(bad)
    assert "demo_gwm" in available_labelsets()


def test_smallest_int_dtype_takes_the_first_that_holds_the_range():
    assert smallest_int_dtype(0, 255) == np.uint8
    assert smallest_int_dtype(-1, 5) == smallest_int_dtype(0, 256) == np.int16
    assert smallest_int_dtype(0, 2**15, (np.int16, np.int32)) == np.int32
    with pytest.raises(ValueError, match=r"0\.\.40000 do not fit int16"):
        smallest_int_dtype(0, 40000, (np.uint8, np.int16))
    assert class_dtype(256) == np.uint8 and class_dtype(257) == np.int16


def test_largest_component_keeps_the_largest_26_connected_non_zero_region():
    classes = np.zeros((9, 9, 9), np.uint8)
    classes[1:4, 1:4, 1:4] = 1  # 27 voxels of class 1 ...
    classes[4, 4, 4] = 2  # ... joined to this one by a corner only (26-connectivity)
    classes[5:7, 4, 4] = 3  # and on through class 3: one region of all classes, 30 voxels
    classes[0, 8, 0] = 2  # a stray voxel
    classes[8, 0:5, 8] = 1  # a smaller region of class 1
    kept = largest_component(classes)
    assert kept.dtype == classes.dtype
    expected = classes.copy()
    expected[0, 8, 0] = expected[8, 0:5, 8] = 0
    np.testing.assert_array_equal(kept, expected)
    one = np.zeros((3, 3, 3), np.uint8)
    one[1, 1, 1] = 2
    np.testing.assert_array_equal(largest_component(one), one)


@pytest.mark.parametrize("name", ["dkt_aseg", "demo_gwm"])
def test_a_label_set_written_as_tsv_reads_back_the_same(tmp_path, name):
    labelset = load_labelset(name)
    (tmp_path / "copy.tsv").write_text(labelset.tsv_text())
    copy = load_labelset(tmp_path / "copy.tsv")
    assert (copy.classes, copy.unlisted) == (labelset.classes, labelset.unlisted)


@pytest.mark.parametrize(
    "values",
    [
        np.array([[3, -2], [3, 7]], np.int16),
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4) % 5,
        np.array([0, 2**21, 5, 5], np.int32),  # wider than the counting range: sorted
        np.array([0.5, 2.0, 0.5]),
        np.zeros((0, 3), np.int16),
    ],
)
def test_count_values_is_np_unique(values):
    distinct, counts, inverse = count_values(values)
    want_distinct, want_inverse, want_counts = np.unique(
        values.ravel(), return_inverse=True, return_counts=True
    )
    np.testing.assert_array_equal(distinct, want_distinct)
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_array_equal(inverse, want_inverse)
    assert distinct.dtype == values.dtype
