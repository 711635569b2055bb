import logging

import numpy as np
import pytest

from meshseg.labels import LabelSet, available_labelsets, load_labelset

SHIPPED = ["catalyst102", "catalyst31", "demo_gwm", "dkt62", "dkt_aseg", "gwm"]

# DKT31 (Klein & Tourville 2012): x002 x003 x005-x031 x034 x035, x = 1 left, 2 right.
DKT31 = [2, 3, *range(5, 32), 34, 35]
DKT62 = [1000 + n for n in DKT31] + [2000 + n for n in DKT31]

# catalyst-team/neuro neuro/scripts/prepare_data.py keeps labels[:31] of its list and writes
# class j + 1 for labels[j]: left cortex only, 1035/1036 written where 1034/1035 were meant.
REFERENCE_31 = [
    1002,
    1003,
    1005,
    1006,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    1015,
    1016,
    1017,
    1018,
    1019,
    1020,
    1021,
    1022,
    1023,
    1024,
    1025,
    1026,
    1027,
    1028,
    1029,
    1030,
    1031,
    1035,
    1036,
]
# The same script's whole list, the reference's "102 classes": both hemispheres' cortex, then 39
# non-cortical ids in the order of Mindboggle's docs (labels.rst).
REFERENCE_101 = [
    *REFERENCE_31,
    2002,
    2003,
    *range(2005, 2032),
    2034,
    2035,
    16,
    24,
    14,
    15,
    72,
    85,
    4,
    5,
    6,
    7,
    10,
    11,
    12,
    13,
    17,
    18,
    25,
    26,
    28,
    30,
    91,
    43,
    44,
    45,
    46,
    49,
    50,
    51,
    52,
    53,
    54,
    57,
    58,
    60,
    62,
    92,
    630,
    631,
    632,
]
# Ids of Mindboggle-101's manual+aseg files that are no dkt_aseg class: ctx-unknown (cortex
# without a DKT31 region), the DK regions DKT removed (bankssts, frontal and temporal pole), 72.
STRAY = [72, 1000, 1001, 1032, 1033, 2000, 2001, 2032, 2033]


def source_ids(labelset: LabelSet) -> list[int]:
    return [s for c in labelset.classes for s in c.source_ids]


def test_every_shipped_set_is_listed_and_loads():
    assert set(SHIPPED) <= set(available_labelsets())
    for name in available_labelsets():
        labelset = load_labelset(name)
        assert labelset.name == name
        background = labelset.classes[0]
        assert background.id == 0 and 0 in background.source_ids, (
            f"{name}: class 0 must be background"
        )


@pytest.mark.parametrize("name", SHIPPED)
def test_each_id_in_one_class_and_classes_contiguous(name):
    labelset = load_labelset(name)
    ids = source_ids(labelset)
    assert len(ids) == len(set(ids)), f"{name}: a source id is in two classes"
    assert [c.index for c in labelset.classes] == list(range(labelset.n_classes))
    out_ids = [c.id for c in labelset.classes]
    assert len(out_ids) == len(set(out_ids))


def test_dkt62_is_background_plus_the_62_dkt_labels():
    labelset = load_labelset("dkt62")
    assert labelset.n_classes == 63
    assert source_ids(labelset) == [0, *DKT62]
    assert [c.id for c in labelset.classes] == [0, *DKT62]
    assert labelset.unlisted == "background"


def test_dkt62_lut_uses_freesurfer_names_and_colours():
    lines = load_labelset("dkt62").lut_text().splitlines()
    rows = {int(r[0]): r[1:] for r in (line.split() for line in lines if not line.startswith("#"))}
    assert rows[1028] == ["ctx-lh-superiorfrontal", "20", "220", "160", "0"]
    assert rows[2035] == ["ctx-rh-insula", "255", "192", "32", "0"]
    assert rows[0][0] == "Unknown"


def test_dkt_aseg_round_trips_every_class_id():
    labelset = load_labelset("dkt_aseg")
    assert labelset.unlisted == "error"
    assert all(c.source_ids == (c.id,) for c in labelset.classes[1:])
    ids = np.array([c.id for c in labelset.classes])
    assert [i for i in ids if i > 1000] == DKT62
    assert {2, 41, 10, 49, 17, 53, 16, 251, 255} <= set(ids.tolist())
    assert labelset.n_classes == 1 + 42 + 62  # background, the aseg ids found in the files, DKT31
    volume = np.resize(ids, (5, 7, 11))  # every id, more than once, in a 3-D volume
    classes = labelset.to_classes(volume)
    assert classes.dtype == np.uint8
    np.testing.assert_array_equal(labelset.to_ids(classes), volume)


def test_catalyst31_reproduces_the_reference_ids():
    labelset = load_labelset("catalyst31")
    assert labelset.n_classes == 31
    assert labelset.unlisted == "background"
    # classes 0..30 of the reference's 31-channel network; its 31st id (1036) would be class 31,
    # which that network does not have, and no FreeSurfer file holds it
    assert source_ids(labelset) == [0, *REFERENCE_31[:30]]
    ids = np.array([0, *REFERENCE_31, 1034, 2002, 2, 17])
    expected = [0, *range(1, 31), 0, 0, 0, 0, 0]
    np.testing.assert_array_equal(labelset.to_classes(ids), expected)


def test_dkt_aseg_sends_stray_ids_to_background_with_a_logged_count(caplog):
    labelset = load_labelset("dkt_aseg")
    assert not set(STRAY) & {c.id for c in labelset.classes}, "a stray id is a class"
    ids = np.array([0, 1028, 1000, 1000, 72, 2033, 17, 1001])
    with caplog.at_level(logging.INFO, logger="meshseg.labels"):
        classes = labelset.to_classes(ids, source="sub-3.nii.gz")
    np.testing.assert_array_equal(labelset.to_ids(classes), [0, 1028, 0, 0, 0, 0, 17, 0])
    [record] = [r for r in caplog.records if "sub-3.nii.gz" in r.getMessage()]
    assert "{72: 1, 1000: 2, 1001: 1, 2033: 1}" in record.getMessage()


def test_catalyst102_is_the_reference_list_in_order():
    labelset = load_labelset("catalyst102")
    assert labelset.n_classes == 102
    assert labelset.unlisted == "background"
    assert [c.id for c in labelset.classes] == [0, *REFERENCE_101]
    assert source_ids(labelset) == [0, *REFERENCE_101]
    np.testing.assert_array_equal(
        labelset.to_classes(np.array([1034, 2, 41, 1035, 632])), [0, 0, 0, 30, 101]
    )
    catalyst31 = load_labelset("catalyst31")
    assert catalyst31.classes == labelset.classes[:31]  # the buggy set is its first 31 classes


def test_gwm_classes_and_ids():
    labelset = load_labelset("gwm")
    assert [(c.id, c.name) for c in labelset.classes] == [
        (0, "Unknown"),
        (702, "GrayMatter-FSL-FAST"),
        (703, "WhiteMatter-FSL-FAST"),
    ]
    ids = np.array(
        [
            0,
            1028,
            2035,
            3,
            42,
            8,
            47,
            10,
            49,
            17,
            53,
            26,
            58,
            28,
            60,
            2,
            41,
            7,
            46,
            77,
            251,
            255,
            16,
            4,
            43,
            14,
            15,
            24,
            31,
            63,
        ]
    )
    expected = [0] + [1] * 14 + [2] * 8 + [0] * 7
    np.testing.assert_array_equal(labelset.to_classes(ids), expected)
    assert set(DKT62) <= set(labelset.classes[1].source_ids)


def test_unlisted_ids_go_to_background_and_are_logged(caplog):
    labelset = load_labelset("dkt62")
    ids = np.array([0, 1028, 2, 2, 2, 17, 1028])
    with caplog.at_level(logging.INFO, logger="meshseg.labels"):
        classes = labelset.to_classes(ids, source="sub-1_labels.nii.gz")
    np.testing.assert_array_equal(labelset.to_ids(classes), [0, 1028, 0, 0, 0, 0, 1028])
    [record] = [r for r in caplog.records if "sub-1_labels.nii.gz" in r.getMessage()]
    assert "{2: 3, 17: 1}" in record.getMessage()


def test_unlisted_ids_raise_without_the_flag():
    with pytest.raises(ValueError, match=r"sub-2\.nii\.gz.*dkt_aseg.*\{6: 2\}"):
        load_labelset("dkt_aseg").to_classes(np.array([0, 6, 6, 1028]), source="sub-2.nii.gz")


def test_flag_is_read_from_the_tsv_and_kept_in_checkpoints(tmp_path):
    rows = "class\tid\tname\tR\tG\tB\tsource_ids\n0\t0\tbg\t0\t0\t0\t0\n1\t3\tctx\t1\t2\t3\t3,42\n"
    flagged, plain, bad = tmp_path / "flagged.tsv", tmp_path / "plain.tsv", tmp_path / "bad.tsv"
    flagged.write_text("# source: a test\n# unlisted: background\n" + rows)
    plain.write_text("# unlisted ids are errors here\n" + rows)
    bad.write_text("# unlisted: drop\n" + rows)
    assert load_labelset(flagged).unlisted == "background"
    assert load_labelset(plain).unlisted == "error"
    with pytest.raises(ValueError, match="unlisted must be one of"):
        load_labelset(bad)
    for name in (flagged, "catalyst31", "catalyst102", "dkt_aseg"):
        labelset = load_labelset(name)
        assert LabelSet.from_dict(labelset.to_dict()) == labelset
    old = load_labelset(flagged).to_dict()
    del old["unlisted"]  # checkpoints written before the flag existed
    assert LabelSet.from_dict(old).unlisted == "error"
