import errno
import gzip
import os
import pathlib
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

import meshseg.image.io
from meshseg.image.io import (
    ImageError,
    OutputError,
    atomic_path,
    load_image,
    save_image,
    write_table,
    write_text,
)
from meshseg.nn.checkpoint import save_checkpoint
from meshseg.nn.models import model_config
from tests.conftest import everything_in


def test_save_and_load_keep_data_and_affine(tmp_path):
    affine = np.array([[0, 0, 1.2, -3], [-1, 0, 0, 4], [0, 1, 0, 5], [0, 0, 0, 1]])
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    save_image(data, affine, tmp_path / "a.nii.gz")
    img = load_image(tmp_path / "a.nii.gz")
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, affine)
    assert [p.name for p in tmp_path.iterdir()] == ["a.nii.gz"]


def bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.nii.gz"
    if kind == "truncated":
        noise = np.random.default_rng(0).random((20, 20, 20), dtype=np.float32)
        save_image(noise, np.eye(4), path)
        path.write_bytes(path.read_bytes()[:2000])
    elif kind == "text":
        path.write_bytes(gzip.compress(b"this is not an image"))
    elif kind == "4d":
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), path)
    elif kind == "2d":
        nib.save(nib.Nifti1Image(np.zeros((4, 4), np.float32), np.eye(4)), path)
    elif kind == "nan":
        data = np.zeros((4, 4, 4), np.float32)
        data[0, 0, 0] = np.nan
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


@pytest.mark.parametrize(
    "kind,problem",
    [
        ("truncated", "not a readable"),
        ("text", "not a readable"),
        ("4d", "expected a 3-D image"),
        ("2d", "expected a 3-D image"),
        ("nan", "1 voxels are NaN or Inf"),
        ("missing", "file not found"),
    ],
)
def test_bad_images_name_the_file_and_problem(tmp_path, kind, problem):
    path = bad_file(tmp_path, kind)
    with pytest.raises(ImageError, match=f"{kind}.nii.gz: {problem}") as err:
        load_image(path)
    assert "\n" not in str(err.value)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "out.nii.gz") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_label_maps_keep_whole_floats_and_refuse_others_naming_the_file(tmp_path):
    save_image(np.full((2, 2, 2), 41.0004, np.float32), np.eye(4), tmp_path / "whole.nii.gz")
    save_image(np.full((2, 2, 2), 2.3, np.float32), np.eye(4), tmp_path / "half.nii.gz")
    ids = np.asarray(load_image(tmp_path / "whole.nii.gz", labels=True).dataobj)
    assert ids.dtype == np.int16 and (ids == 41).all()
    with pytest.raises(ImageError, match=r"half\.nii\.gz: label image has non-integral values"):
        load_image(tmp_path / "half.nii.gz", labels=True)


def test_write_table_rounds_floats_to_its_format(tmp_path):
    table = pd.DataFrame({"name": ["a"], "x": [0.123456789]})
    write_table(table, tmp_path / "six.tsv")
    write_table(table, tmp_path / "exact.tsv", float_format=None)
    assert (tmp_path / "six.tsv").read_text() == "name\tx\na\t0.123457\n"
    assert (tmp_path / "exact.tsv").read_text() == "name\tx\na\t0.123456789\n"


# ----- output folder not writable, disk full -----


MESHNET = model_config("meshnet", 3)


def as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def writers() -> dict:
    """name -> (function writing one output to a path, a file name for it)."""
    return {
        "save_image": (
            lambda p: save_image(np.ones((4, 4, 4), np.uint8), np.eye(4), p),
            "t1.nii.gz",
        ),
        "write_text": (lambda p: write_text("a\tb\n", p), "table.tsv"),
        "save_checkpoint": (
            lambda p: save_checkpoint(
                {"model": {}, "model_config": MESHNET, "labelset": {}, "step": 0}, p
            ),
            "checkpoint.pt",
        ),
    }


@pytest.mark.parametrize("how", ["read-only", "parent-is-a-file", "no-temp-file"])
@pytest.mark.parametrize("writer", ["save_image", "write_text", "save_checkpoint"])
def test_output_folder_not_writable_fails_naming_the_file(tmp_path, monkeypatch, writer, how):
    write, name = writers()[writer]
    folder = tmp_path / "results"
    folder.mkdir()
    if how == "read-only":
        target, problem = folder / name, f"output folder {folder} is not writable"
        if as_root():  # root writes through chmod: the check meets what os.access would say
            real_access = os.access
            monkeypatch.setattr(
                os,
                "access",
                lambda p, mode, **kw: False if Path(p) == folder else real_access(p, mode, **kw),
            )
        else:
            folder.chmod(0o555)
    elif how == "parent-is-a-file":  # fails for root too
        (folder / "sub-1").write_text("a file where the output folder should be")
        target, problem = (
            folder / "sub-1" / name,
            f"cannot create the output folder {folder / 'sub-1'}",
        )
    else:  # a read-only mount or quota: creating the temporary file itself fails

        def refuse(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
        target, problem = folder / name, f"cannot write in {folder} (Read-only file system)"
    try:
        with pytest.raises(OutputError) as info:
            write(target)
    finally:
        folder.chmod(0o755)
    assert str(info.value).startswith(f"{target}: ") and problem in str(info.value), str(info.value)
    assert isinstance(info.value, OSError) and "\n" not in str(info.value)
    assert everything_in(folder) == ([] if how != "parent-is-a-file" else ["sub-1"])


def out_of_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def writes_half_then_fills_the_disk(obj, path, *args, **kwargs):
    """Stand-in for nib.save / torch.save: some bytes reach the file, then ENOSPC."""
    Path(path).write_bytes(b"\x1f\x8b partial")
    out_of_space()


@pytest.mark.parametrize("writer", ["save_image", "write_text", "save_checkpoint"])
def test_disk_full_names_the_file_and_leaves_nothing(tmp_path, monkeypatch, writer):
    write, name = writers()[writer]
    folder = tmp_path / "results"
    previous = folder / "old" / name  # an output of an earlier run stays whole
    write(previous)
    before = previous.read_bytes()
    if writer == "save_image":
        monkeypatch.setattr(meshseg.image.io.nib, "save", writes_half_then_fills_the_disk)
    elif writer == "save_checkpoint":
        monkeypatch.setattr(torch, "save", writes_half_then_fills_the_disk)
    else:
        real = pathlib.Path.write_text
        monkeypatch.setattr(
            pathlib.Path,
            "write_text",
            lambda self, text, *a, **k: (real(self, text[:1]), out_of_space()),
        )
    for target in (folder / "new" / name, previous):
        with pytest.raises(OutputError) as info:
            write(target)
        assert str(info.value) == f"{target}: not written (No space left on device)"
        assert info.value.errno == errno.ENOSPC
    assert everything_in(folder) == ["new", "old", f"old/{name}"]
    assert previous.read_bytes() == before
