"""Bad inputs and faults (issue 8): errors name the file and the problem; nothing partial is left.

Each row of the issue, then the tests that cover it (pytest node ids; a test without
[...] runs all its parameter sets):

truncated `.nii.gz`
    tests/unit/test_faults.py::test_truncated_nii_gz_fails_naming_the_file_and_leaves_no_output
    tests/unit/test_io.py::test_bad_images_name_the_file_and_problem[truncated-not a readable]
    tests/workflow/test_workflow.py::test_corrupt_input_fails_naming_the_file_and_leaves_no_output

not a NIfTI at all
    tests/unit/test_faults.py::test_file_that_is_not_a_nifti_fails_naming_the_file
    tests/unit/test_io.py::test_bad_images_name_the_file_and_problem[text-not a readable]
    tests/unit/test_conform.py::test_corrupt_input_leaves_no_output
    tests/unit/test_cli.py::test_errors_are_one_line_naming_the_file

4-D image
    tests/unit/test_faults.py::test_4d_image_fails_naming_the_file_and_its_shape
    tests/unit/test_io.py::test_bad_images_name_the_file_and_problem[4d-expected a 3-D image]

2-D image
    tests/unit/test_faults.py::test_2d_image_fails_naming_the_file_and_its_shape
    tests/unit/test_io.py::test_bad_images_name_the_file_and_problem[2d-expected a 3-D image]

NaN or Inf voxels
    tests/unit/test_faults.py::test_nan_or_inf_voxels_fail_naming_the_file_and_their_count
    tests/unit/test_io.py::test_bad_images_name_the_file_and_problem[nan-1 voxels are NaN or Inf]

constant image (min = max)
    tests/unit/test_faults.py::test_constant_image_fails_naming_the_file
    tests/unit/test_preprocess.py::test_errors_name_the_file_and_leave_no_output
    tests/unit/test_intensity.py::test_constant_image_is_an_error

T1 and label of different shape or affine
    tests/unit/test_faults.py::test_t1_and_labels_of_different_shape_fail_naming_both_files
    tests/unit/test_faults.py::test_t1_and_labels_of_different_affine_fail_naming_both_files
    tests/unit/test_faults.py::test_prediction_and_truth_of_different_grids_fail_naming_both_files
    tests/unit/test_evaluation.py::test_mismatched_grids_name_the_file

labels that are not integers
    tests/unit/test_faults.py::test_labels_that_are_not_integers_fail_naming_the_file
    tests/unit/test_preprocess.py::test_errors_name_the_file_and_leave_no_output
    tests/unit/test_conform.py::test_non_integral_labels_are_an_error

label ids outside the chosen set
    tests/unit/test_faults.py::test_label_ids_outside_the_chosen_set_fail_naming_the_file_and_ids
    tests/unit/test_training.py::test_labels_outside_the_set_name_the_file
    tests/unit/test_labels.py::test_unknown_ids_are_reported_with_counts

missing subject file
    tests/unit/test_faults.py::test_missing_subject_file_fails_naming_the_file
    tests/unit/test_io.py::test_bad_images_name_the_file_and_problem[missing-file not found]
    tests/workflow/test_faults.py::test_missing_empty_or_duplicated_subject_sheet_stops_before_any_job_naming_the_file[missing]

empty or duplicated subject sheet
    tests/unit/test_subjects.py::test_bad_sheets_name_the_file_and_problem
    tests/workflow/test_faults.py::test_missing_empty_or_duplicated_subject_sheet_stops_before_any_job_naming_the_file[empty]
    tests/workflow/test_faults.py::test_missing_empty_or_duplicated_subject_sheet_stops_before_any_job_naming_the_file[duplicated]

config value of the wrong type or out of range (schema, before any job)
    tests/workflow/test_faults.py::test_config_value_of_wrong_type_or_out_of_range_stops_before_any_job_naming_the_key

corrupt checkpoint
    tests/unit/test_faults.py::test_corrupt_checkpoint_fails_segmentation_naming_the_file_and_writes_nothing
    tests/unit/test_checkpoint.py::test_truncated_checkpoint_names_the_file

checkpoint of another architecture or label set
    tests/unit/test_faults.py::test_checkpoint_of_another_architecture_fails_naming_the_file
    tests/unit/test_faults.py::test_checkpoint_of_another_label_set_fails_naming_the_file
    tests/unit/test_faults.py::test_resume_state_of_another_label_set_is_not_used
    tests/unit/test_checkpoint.py::test_foreign_pickle_and_wrong_architecture
    tests/unit/test_training.py::test_resume_state_of_another_configuration_is_ignored

output folder not writable
    tests/unit/test_faults.py::test_output_folder_not_writable_fails_naming_the_file
    tests/unit/test_faults.py::test_osf_download_into_a_folder_that_cannot_be_made_fails_naming_the_file

OSF 5xx and dropped connections (retried, then a clear error)
    tests/unit/test_osf.py::test_503_then_200_succeeds
    tests/unit/test_osf.py::test_dropped_connection_is_resumed_with_range
    tests/unit/test_osf.py::test_resume_refused_starts_over
    tests/unit/test_osf.py::test_list_archives_retries_a_5xx_and_fails_clearly_on_4xx
    tests/unit/test_osf.py::test_retries_exhausted_names_url_and_last_error
    tests/unit/test_osf.py::test_stalled_server_times_out_then_resumes
    tests/unit/test_faults.py::test_osf_connection_dropped_every_time_gives_up_naming_the_file_then_resumes
    tests/unit/test_faults.py::test_osf_listing_5xx_every_time_gives_a_clear_error

wrong hash (file not kept)
    tests/unit/test_osf.py::test_wrong_hash_fails_and_leaves_no_file

`kill -9` during training
    tests/unit/test_faults.py::test_kill_9_during_training_resumes_to_the_result_of_an_uninterrupted_run
    tests/unit/test_training.py::test_killed_run_resumes_to_the_same_result

`kill -9` during inference
    tests/unit/test_faults.py::test_kill_9_during_inference_leaves_no_output_and_the_rerun_completes

`kill -9` during conform
    tests/unit/test_faults.py::test_kill_9_during_conform_leaves_no_output_and_the_rerun_completes

disk full while writing (simulated)
    tests/unit/test_faults.py::test_disk_full_names_the_file_and_leaves_nothing
    tests/unit/test_faults.py::test_disk_full_during_osf_download_names_the_file_and_leaves_nothing
    tests/unit/test_io.py::test_atomic_path_leaves_nothing_on_failure

"Nothing partial left": no file under the final name, and no temporary file beside it either,
except after SIGKILL, where ``.<name>.part-<host>-<pid>-<random>`` may remain until the next
write of ``<name>`` removes it (meshseg.image.io module docstring).
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

import meshseg.image.io
from meshseg.data import osf
from meshseg.data.subjects import read_subject_sheet
from meshseg.image.conform import conform_file, is_conformed
from meshseg.image.io import ImageError, OutputError, save_image, write_text
from meshseg.image.preprocess import prepare_file
from meshseg.labels import load_labelset
from meshseg.nn.checkpoint import load, load_checkpoint, save_checkpoint
from meshseg.nn.crops import TrainingData, Volume, load_volumes
from meshseg.nn.inference import InferenceConfig, LabelFiles, segment_file
from meshseg.nn.models import build_model, model_config
from meshseg.nn.runtime import Compute
from meshseg.nn.training import train
from meshseg.report.evaluation import structure_table
from tests.conftest import sphere_volume, tiny_checkpoint, train_config

pytest_plugins = ["tests.osf_server"]  # the fake_osf fixture

ROOT = Path(__file__).resolve().parents[2]
LABELSET = load_labelset("demo_gwm")
MESHNET = model_config("meshnet", 3)
AFFINE = np.diag([-1.0, 1.0, 1.0, 1.0])
MMRR = "MMRR-21_volumes.tar.gz"
FAST = {"timeout": 5, "retries": 2, "backoff": 0.01}


def everything_in(folder: Path) -> list[str]:
    """Every file and folder under ``folder`` (hidden ones too), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def small_t1(path: Path, shape=(12, 12, 12), dtype=np.float32) -> Path:
    data = np.random.default_rng(0).uniform(0, 100, shape).astype(dtype)
    save_image(data, np.eye(4), path)
    return path


def fails_cleanly(call, path: Path, problem: str, out_dir: Path, error=ImageError) -> str:
    """``call()`` raises ``error`` naming ``path``, then ``problem``; ``out_dir`` stays empty."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message, message
    assert "\n" not in message
    assert everything_in(out_dir) == []
    return message


# ----- bad inputs: each file-level check, through the first job that reads it (conform) -----


def test_truncated_nii_gz_fails_naming_the_file_and_leaves_no_output(tmp_path):
    path = small_t1(tmp_path / "t1weighted.nii.gz", shape=(20, 20, 20))
    path.write_bytes(path.read_bytes()[:1500])
    out = tmp_path / "out"
    fails_cleanly(
        lambda: conform_file(path, out / "t1.nii.gz", backend="python"),
        path,
        "not a readable NIfTI/MGZ image",
        out,
    )


@pytest.mark.parametrize(
    "content",
    [gzip.compress(b"subject,age\nsub-1,30\n"), b"subject,age\nsub-1,30\n" * 30, b""],
    ids=["gzipped-text", "plain-text", "empty"],
)
def test_file_that_is_not_a_nifti_fails_naming_the_file(tmp_path, content):
    path = tmp_path / "t1weighted.nii.gz"
    path.write_bytes(content)
    out = tmp_path / "out"
    fails_cleanly(
        lambda: conform_file(path, out / "t1.nii.gz", backend="python"),
        path,
        "not a readable NIfTI/MGZ image",
        out,
    )


def test_4d_image_fails_naming_the_file_and_its_shape(tmp_path):
    path = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 6, 6, 3), np.float32), np.eye(4)), path)
    out = tmp_path / "out"
    fails_cleanly(
        lambda: conform_file(path, out / "t1.nii.gz", backend="python"),
        path,
        "expected a 3-D image, got shape (6, 6, 6, 3)",
        out,
    )


def test_2d_image_fails_naming_the_file_and_its_shape(tmp_path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 7), np.float32), np.eye(4)), path)
    out = tmp_path / "out"
    fails_cleanly(
        lambda: conform_file(path, out / "t1.nii.gz", backend="python"),
        path,
        "expected a 3-D image, got shape (6, 7)",
        out,
    )


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_nan_or_inf_voxels_fail_naming_the_file_and_their_count(tmp_path, value):
    data = np.random.default_rng(0).uniform(0, 100, (8, 8, 8)).astype(np.float32)
    data[1, 2, 3] = data[4, 5, 6] = value
    path = tmp_path / "t1weighted.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    out = tmp_path / "out"
    fails_cleanly(
        lambda: conform_file(path, out / "t1.nii.gz", backend="python"),
        path,
        "2 voxels are NaN or Inf",
        out,
    )


@pytest.mark.parametrize("step", ["conform", "prepare"])
def test_constant_image_fails_naming_the_file(tmp_path, step):
    # a float T1 fails at conform (uchar scaling); a uint8 one passes conform unchanged and
    # fails at prepare (min-max normalisation)
    dtype = np.float32 if step == "conform" else np.uint8
    path = tmp_path / "blank.nii.gz"
    save_image(np.full((8, 8, 8), 7, dtype), np.eye(4), path)
    out = tmp_path / "out"
    run = conform_file if step == "conform" else prepare_file
    kwargs = {"backend": "python"} if step == "conform" else {"size": 16}
    fails_cleanly(lambda: run(path, out / "t1.nii.gz", **kwargs), path, "constant image", out)


@pytest.mark.parametrize("step", ["conform", "prepare"])
def test_labels_that_are_not_integers_fail_naming_the_file(tmp_path, step):
    labels = np.zeros((8, 8, 8), np.float32)
    labels[2:5, 2:5, 2:5] = 1.5
    path = tmp_path / "labels.nii.gz"
    save_image(labels, np.eye(4), path)
    out = tmp_path / "out"
    run = conform_file if step == "conform" else prepare_file
    kwargs = {"backend": "python"} if step == "conform" else {"size": 16}
    fails_cleanly(
        lambda: run(path, out / "labels.nii.gz", labels=True, **kwargs),
        path,
        "label image has non-integral values (0.5 from a whole number)",
        out,
    )


def test_label_ids_outside_the_chosen_set_fail_naming_the_file_and_ids(tmp_path):
    image, labels = sphere_volume(size=16)
    labels = labels.astype(np.int16)
    labels[0, 0, :3] = 1002
    save_image(image, AFFINE, tmp_path / "t1.nii.gz")
    save_image(labels, AFFINE, tmp_path / "labels.nii.gz")
    with pytest.raises(
        ValueError,
        match=r"labels\.nii\.gz: label ids not in label set "
        r"'demo_gwm' \(id: voxels\) \{1002: 3\}",
    ):
        load_volumes([tmp_path / "t1.nii.gz"], [tmp_path / "labels.nii.gz"], LABELSET)


def test_t1_and_labels_of_different_shape_fail_naming_both_files(tmp_path):
    image, labels = sphere_volume(size=16)
    t1, lab = tmp_path / "sub-1_t1.nii.gz", tmp_path / "sub-1_labels.nii.gz"
    save_image(image, AFFINE, t1)
    save_image(labels[:, :, :15], AFFINE, lab)
    with pytest.raises(ImageError) as info:
        load_volumes([t1], [lab], LABELSET)
    assert str(info.value) == (
        f"{lab}: shape (16, 16, 15) differs from (16, 16, 16) of {t1}; "
        "both must be on the same voxel grid"
    )


def test_t1_and_labels_of_different_affine_fail_naming_both_files(tmp_path):
    image, labels = sphere_volume(size=16)
    t1, lab = tmp_path / "sub-1_t1.nii.gz", tmp_path / "sub-1_labels.nii.gz"
    shifted = AFFINE.copy()
    shifted[:3, 3] = [0.0, 2.0, 0.0]  # same shape, 2 mm apart
    save_image(image, AFFINE, t1)
    save_image(labels, shifted, lab)
    with pytest.raises(
        ImageError, match=rf"^{lab}: affine differs from that of {t1} \(by up to 2\)"
    ):
        load_volumes([t1], [lab], LABELSET)


@pytest.mark.parametrize("change", ["shape", "affine"])
def test_prediction_and_truth_of_different_grids_fail_naming_both_files(tmp_path, change):
    labels = sphere_volume(size=8)[1].astype(np.int16)
    pred, truth = tmp_path / "pred.nii.gz", tmp_path / "truth.nii.gz"
    save_image(labels, AFFINE, truth)
    if change == "shape":
        save_image(labels[:7], AFFINE, pred)
    else:
        save_image(labels, AFFINE * [[1], [1], [2], [1]], pred)
    with pytest.raises(ImageError) as info:
        structure_table(pred, truth, LABELSET)
    assert str(pred) in str(info.value) and str(truth) in str(info.value)


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
        save_image(image, AFFINE, tmp_path / "t1.nii.gz")
        path = tmp_path / "sub-1" / "labels.nii.gz"
        with pytest.raises(ImageError, match=rf"^{path}: file not found$"):
            load_volumes([tmp_path / "t1.nii.gz"], [path], LABELSET)


# ----- checkpoints -----


def segment(checkpoint: Path, image: Path, out: Path) -> dict:
    """The real segment_file on a prepared 48^3 volume, 30 16^3 subvolumes, fp32 on CPU."""
    config = InferenceConfig(
        n_subvolumes=30, batch_size=8, precision="fp32", device="cpu", channels_last=False
    )
    return segment_file(
        load(checkpoint),
        image,
        LabelFiles(out / "labels.nii.gz", out / "labels_lut.txt", out / "inference.json"),
        config,
        Compute.from_config(config),
    )


def test_corrupt_checkpoint_fails_segmentation_naming_the_file_and_writes_nothing(
    tmp_path, prepared_pair
):
    checkpoint = tiny_checkpoint(tmp_path / "checkpoint.pt", patch=16)
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    out = tmp_path / "pred"
    fails_cleanly(
        lambda: segment(checkpoint, prepared_pair[0], out),
        checkpoint,
        "not a readable checkpoint",
        out,
        error=ValueError,
    )


def test_checkpoint_of_another_architecture_fails_naming_the_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(
        {
            "model": build_model(model_config("unet", 3, width=2)).state_dict(),
            "model_config": MESHNET,
            "labelset": LABELSET.to_dict(),
            "step": 0,
        },
        path,
    )
    with pytest.raises(
        ValueError,
        match=rf"^{path}: weights do not fit the architecture "
        r"\{'arch': 'meshnet'",
    ):
        load(path)


def test_checkpoint_of_another_label_set_fails_naming_the_file(tmp_path):
    gwm = tiny_checkpoint(tmp_path / "gwm.pt", patch=16)
    dkt62 = load_labelset("dkt62")
    with pytest.raises(
        ValueError,
        match=rf"^{gwm}: trained for label set 'demo_gwm' \(3 classes\), "
        rf"not 'dkt62' \({dkt62.n_classes} classes\)$",
    ):
        load(gwm, dkt62)
    assert load(gwm, LABELSET).labelset == LABELSET  # the right set passes
    # weights for 3 classes stored beside a label set of another size
    odd = tmp_path / "odd.pt"
    save_checkpoint({**load_checkpoint(gwm), "labelset": dkt62.to_dict()}, odd)
    with pytest.raises(
        ValueError,
        match=rf"^{odd}: the network predicts 3 classes but its label "
        rf"set 'dkt62' has {dkt62.n_classes}$",
    ):
        load(odd)


def volumes(n: int = 2) -> list[Volume]:
    return [Volume(f"v{i}", *sphere_volume(seed=i)) for i in range(n)]


def test_resume_state_of_another_label_set_is_not_used(tmp_path, caplog):
    ckpt = tmp_path / "checkpoint.pt"
    other = load_labelset("gwm")  # 3 classes too, other ids: the same network would fit
    train(
        train_config(steps=3, checkpoint_every=100),
        MESHNET,
        TrainingData(other, volumes(), []),
        ckpt,
        tmp_path / "curve.tsv",
    )
    stale = load_checkpoint(ckpt)
    save_checkpoint({**stale, "step": 2}, tmp_path / "checkpoint.pt.resume.pt")
    ckpt.unlink()
    with caplog.at_level("INFO", logger="meshseg.nn.training"):
        train(
            train_config(steps=3, checkpoint_every=100),
            MESHNET,
            TrainingData(LABELSET, volumes(), []),
            ckpt,
            tmp_path / "curve.tsv",
        )
    assert "made with another configuration" in caplog.text and "resuming" not in caplog.text
    assert load_checkpoint(ckpt)["labelset"] == LABELSET.to_dict()


# ----- output folder not writable, disk full -----


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


def test_disk_full_during_osf_download_names_the_file_and_leaves_nothing(
    fake_osf, tmp_path, monkeypatch
):
    remote = next(f for f in osf.list_archives(fake_osf.api_url) if f.name == MMRR)

    class FillsUp:
        """A file whose second write finds the disk full."""

        def __init__(self, stream):
            self.stream, self.writes = stream, 0

        def write(self, data):
            self.writes += 1
            if self.writes > 1:
                out_of_space()
            return self.stream.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    def fake_open(path, mode="r", *args, **kwargs):
        stream = open(path, mode, *args, **kwargs)
        return FillsUp(stream) if "w" in mode or "a" in mode else stream

    monkeypatch.setattr(osf, "open", fake_open, raising=False)
    dest = tmp_path / "archives" / MMRR
    with pytest.raises(
        osf.DownloadError,
        match=rf"^{dest}: not written \(No space left on device\); "
        rf"the partial download {MMRR}\.part was deleted$",
    ):
        osf.download(remote, dest, **FAST)
    assert everything_in(tmp_path / "archives") == [] and fake_osf.downloads(MMRR) == 1


def test_osf_download_into_a_folder_that_cannot_be_made_fails_naming_the_file(fake_osf, tmp_path):
    remote = next(f for f in osf.list_archives(fake_osf.api_url) if f.name == MMRR)
    (tmp_path / "archives").write_text("a file where the folder should be")
    dest = tmp_path / "archives" / MMRR
    with pytest.raises(osf.DownloadError, match=rf"^{dest}: cannot create the folder "):
        osf.download(remote, dest, **FAST)
    assert fake_osf.downloads(MMRR) == 0


# ----- OSF faults beyond tests/unit/test_osf.py -----


def test_osf_connection_dropped_every_time_gives_up_naming_the_file_then_resumes(
    fake_osf, tmp_path
):
    remote = next(f for f in osf.list_archives(fake_osf.api_url) if f.name == MMRR)
    fake_osf.faults[MMRR] = ["drop"] * 3
    dest = tmp_path / MMRR
    with pytest.raises(
        osf.DownloadError,
        match=rf"^{remote.url}: download of {MMRR} gave up after 2 "
        r"retries; last error: ",
    ):
        osf.download(remote, dest, **FAST)
    assert fake_osf.downloads(MMRR) == 3 and not dest.exists()
    assert everything_in(tmp_path) == [f"{MMRR}.part"]  # kept to resume, never under the final name
    assert osf.download(remote, dest, **FAST).read_bytes() == fake_osf.files[MMRR]
    assert fake_osf.ranges[MMRR][-1].startswith("bytes=") and everything_in(tmp_path) == [MMRR]


def test_osf_listing_5xx_every_time_gives_a_clear_error(fake_osf):
    fake_osf.faults["/v2/nodes/9ahyp/"] = ["503"] * 3
    with pytest.raises(
        osf.DownloadError,
        match=rf"^{fake_osf.api_url}: cannot list "
        r"9ahyp/Mindboggle101_volumes \(.*503",
    ):
        osf.list_archives(fake_osf.api_url, retries=2, backoff=0.01)
    assert fake_osf.requests["/v2/nodes/9ahyp/"] == 3


# ----- kill -9 -----


def start_and_kill(code: str, marker: Path, tmp_path: Path) -> None:
    """Run ``code`` in a fresh Python; SIGKILL it once it creates ``marker``."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    try:
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(
                    f"child exited ({proc.returncode}) before the kill point:\n"
                    f"{proc.stdout.read().decode()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("child never reached the kill point")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()  # no-op when already dead
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


CHILD_PAUSE = """
    import pathlib, sys, time
    MARKER = pathlib.Path({marker!r})

    def pause():
        MARKER.touch()
        time.sleep(600)
"""

# nib.save standing in for a write that is cut short: half the bytes are on disk when killed
CHILD_HALF_WRITE = """
    import meshseg.image.io
    _save = meshseg.image.io.nib.save

    def half_save(img, path, *args, **kwargs):
        _save(img, path, *args, **kwargs)
        data = pathlib.Path(path).read_bytes()
        pathlib.Path(path).write_bytes(data[:len(data) // 2])
        pause()

    meshseg.image.io.nib.save = half_save
"""


def test_kill_9_during_training_resumes_to_the_result_of_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    train(
        train_config(),
        MESHNET,
        TrainingData(LABELSET, volumes(), volumes(1)),
        reference / "checkpoint.pt",
        reference / "curve.tsv",
    )
    run, marker = tmp_path / "run", tmp_path / "killed-here"
    start_and_kill(
        CHILD_PAUSE.format(marker=str(marker))
        + f"""
    import meshseg.nn.training as training
    from meshseg.nn.crops import TrainingData
    from tests.unit.test_faults import LABELSET, MESHNET, train_config, volumes
    calls, real_batch = [0], training.random_batch

    def batch_then_pause(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 5:  # in step 5, after the step-3 resumable checkpoint
            pause()
        return real_batch(*args, **kwargs)

    training.random_batch = batch_then_pause
    training.train(train_config(), MESHNET, TrainingData(LABELSET, volumes(), volumes(1)),
                   {str(run / "checkpoint.pt")!r}, {str(run / "curve.tsv")!r})
    """,
        marker,
        tmp_path,
    )
    assert everything_in(run) == ["checkpoint.pt.resume.pt"]  # no final output, no temporary
    assert load_checkpoint(run / "checkpoint.pt.resume.pt")["step"] == 3

    train(
        train_config(),
        MESHNET,
        TrainingData(LABELSET, volumes(), volumes(1)),
        run / "checkpoint.pt",
        run / "curve.tsv",
    )
    assert everything_in(run) == ["checkpoint.pt", "curve.tsv"]
    resumed, expected = (
        load_checkpoint(run / "checkpoint.pt"),
        load_checkpoint(reference / "checkpoint.pt"),
    )
    for name, tensor in expected["model"].items():
        torch.testing.assert_close(resumed["model"][name], tensor, rtol=0, atol=0)
    assert resumed["curve"] == expected["curve"]
    pd.testing.assert_frame_equal(
        pd.read_csv(run / "curve.tsv", sep="\t"), pd.read_csv(reference / "curve.tsv", sep="\t")
    )


@pytest.mark.parametrize("stage", ["compute", "write"])
def test_kill_9_during_inference_leaves_no_output_and_the_rerun_completes(
    tmp_path, prepared_pair, stage
):
    image = prepared_pair[0]
    checkpoint = tiny_checkpoint(tmp_path / "checkpoint.pt", patch=16)
    out, marker = tmp_path / "pred", tmp_path / "killed-here"
    patch = (
        CHILD_HALF_WRITE
        if stage == "write"
        else """
    from meshseg.nn.models.meshnet import MeshNet
    MeshNet.forward = lambda self, x: pause()  # killed while predicting
    """
    )
    start_and_kill(
        CHILD_PAUSE.format(marker=str(marker))
        + patch
        + f"""
    from tests.unit.test_faults import segment
    segment(pathlib.Path({str(checkpoint)!r}), pathlib.Path({str(image)!r}),
            pathlib.Path({str(out)!r}))
    """,
        marker,
        tmp_path,
    )
    left = everything_in(out)
    assert "labels.nii.gz" not in left and "inference.json" not in left, left
    if stage == "write":  # killed half-way through the label map: only its temporary name
        assert (
            [p for p in left if p.startswith(".")]
            == [p for p in left if p.startswith(f".labels.nii.gz.part-{meshseg.image.io._HOST}-")]
            != []
        ), left

    stats = segment(checkpoint, image, out)
    assert everything_in(out) == [
        "inference.json",
        "labels.nii.gz",
        "labels_lut.txt",
    ]  # temp removed
    labels = nib.load(out / "labels.nii.gz")
    assert labels.shape == (48, 48, 48) and set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2}
    assert (
        json.loads((out / "inference.json").read_text())["subvolumes"] == stats["subvolumes"] == 30
    )


@pytest.mark.parametrize("stage", ["compute", "write"])
def test_kill_9_during_conform_leaves_no_output_and_the_rerun_completes(tmp_path, stage):
    source = small_t1(tmp_path / "t1weighted.nii.gz", shape=(10, 12, 14))
    out, marker = tmp_path / "conformed", tmp_path / "killed-here"
    patch = (
        CHILD_HALF_WRITE
        if stage == "write"
        else """
    import meshseg.image.grid
    meshseg.image.grid.resample = lambda *args: pause()  # killed while reslicing
    """
    )
    start_and_kill(
        CHILD_PAUSE.format(marker=str(marker))
        + patch
        + f"""
    from meshseg.image.conform import conform_file
    conform_file({str(source)!r}, {str(out / "t1.nii.gz")!r}, backend="python")
    """,
        marker,
        tmp_path,
    )
    left = everything_in(out)
    if stage == "compute":
        assert left == []
    else:
        assert len(left) == 1 and left[0].startswith(".t1.nii.gz.part-"), left
        with pytest.raises(Exception):  # noqa: B017  (any error: what was left is not an image)
            np.asanyarray(nib.load(out / left[0]).dataobj).sum()

    assert conform_file(source, out / "t1.nii.gz", backend="python") == "python"
    assert everything_in(out) == ["t1.nii.gz"]
    assert is_conformed(nib.load(out / "t1.nii.gz"))


def test_the_row_table_names_tests_that_exist():
    """Every node id in this module's docstring names a test function in an existing file."""
    node_ids = [line.strip() for line in __doc__.splitlines() if line.startswith("    tests/")]
    assert len(node_ids) > 21  # at least one per row
    for node_id in node_ids:
        file, _, test = node_id.partition("::")
        assert f"def {test.partition('[')[0]}(" in (ROOT / file).read_text(), node_id
