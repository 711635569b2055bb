"""Dice against the number of subvolumes N (the seed: Dice grows with N) and whole-volume."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from meshseg.image.io import load_volume, write_table
from meshseg.metrics import dice_per_class, dice_summary
from meshseg.nn.checkpoint import LoadedModel
from meshseg.nn.inference import InferenceConfig, network_input, postprocess, predict_crops
from meshseg.nn.models import is_fully_convolutional
from meshseg.nn.runtime import Compute
from meshseg.nn.subvolumes import grid_locations, inference_locations
from meshseg.nn.vote import VoteAggregator
from meshseg.nn.whole import predict_whole
from meshseg.report.evaluation import load_label_ids

log = logging.getLogger(__name__)

COLUMNS = [
    "subject",
    "model",
    "inference",
    "n_subvolumes",
    "foreground_dice",
    "macro_dice",
    "classes_in_truth",
    "seconds",
]


def _scores(classes: np.ndarray, truth: np.ndarray, n_classes: int) -> dict[str, float]:
    true_voxels = np.bincount(truth.ravel(), minlength=n_classes)[:n_classes]
    return dice_summary(dice_per_class(truth, classes, n_classes), true_voxels)


def dice_vs_subvolumes(
    loaded: LoadedModel,
    image_path: str | os.PathLike,
    truth_path: str | os.PathLike,
    counts: Sequence[int],
    config: InferenceConfig,
    compute: Compute,
) -> pd.DataFrame:
    """Dice of the vote over the first N crops of one crop sequence, for each N in ``counts``.

    The sequence is the one inference uses for the largest N (the covering grid, then
    Gaussian crops of the checkpoint's patch), predicted once; each N votes over its first N
    crops, so the rows differ only in N. N below the grid size is raised to it (the grid is
    always used whole). A fully convolutional model (MeshNet) also gets one whole-volume row
    (n_subvolumes 0); one with instance norm (whole-volume statistics) gets only that row.
    Seconds are the prediction time of the N crops (prorated from the one pass) plus their
    vote (``config.vote``). The votes run side by side, so they hold one vote buffer each
    (meshseg.nn.vote: 116-282 MB for the hard vote). The checkpoint's preprocess record
    normalises the image and finishes the labels, as in segmentation.
    Returns the :data:`COLUMNS` but ``subject`` and ``model`` (see :func:`write_experiment`).
    """
    image = load_volume(image_path)[0].astype(np.float32, copy=False)
    image = network_input(image, loaded)
    truth = loaded.labelset.to_classes(load_label_ids(truth_path)[0], str(truth_path))
    rows = []
    if not getattr(loaded.model, "has_instance_norm", False):
        rows = _vote_rows(loaded, image, truth, counts, config, compute)
    if is_fully_convolutional(loaded.model):
        started = time.perf_counter()
        classes = postprocess(predict_whole(loaded.model, image, compute), loaded)
        rows.append(
            {
                "inference": "whole",
                "n_subvolumes": 0,
                **_scores(classes, truth, loaded.labelset.n_classes),
                "seconds": time.perf_counter() - started,
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS[2:])


def _vote_rows(
    loaded: LoadedModel,
    image: np.ndarray,
    truth: np.ndarray,
    counts: Sequence[int],
    config: InferenceConfig,
    compute: Compute,
) -> list[dict]:
    """The vote rows of :func:`dice_vs_subvolumes`, one per N."""
    size, n, patch = image.shape[0], loaded.labelset.n_classes, loaded.patch
    grid = len(grid_locations(size, patch))
    counts = sorted({max(int(c), grid) for c in counts})
    locations = inference_locations(
        counts[-1], size, patch, config.sd, np.random.default_rng(config.seed)
    )

    order = np.argsort(locations[:, 0], kind="stable")  # the vote takes crops in first-axis order
    votes = {count: VoteAggregator(image.shape, n, rule=config.vote) for count in counts}
    voting = dict.fromkeys(counts, 0.0)  # seconds spent in each N's vote
    started, done = time.perf_counter(), 0
    for predictions, confidence, chunk in predict_crops(
        loaded, image, locations[order], config.batch_size, compute, output=votes[counts[0]].needs
    ):
        position = order[done : done + len(chunk)]  # the crops' places in the sequence
        done += len(chunk)
        for count, aggregator in votes.items():
            tick = time.perf_counter()
            chosen = position < count
            aggregator.add(
                predictions[chosen],
                chunk[chosen],
                None if confidence is None else confidence[chosen],
            )
            voting[count] += time.perf_counter() - tick
    per_crop = (time.perf_counter() - started - sum(voting.values())) / len(locations)
    rows = []
    for count in counts:
        started = time.perf_counter()
        classes = postprocess(votes[count].result(), loaded)
        seconds = count * per_crop + voting[count] + time.perf_counter() - started
        rows.append(
            {
                "inference": "vote",
                "n_subvolumes": count,
                **_scores(classes, truth, n),
                "seconds": seconds,
            }
        )
        log.info("%d subvolumes, foreground Dice %.4f", count, rows[-1]["foreground_dice"])
    return rows


def write_experiment(
    table: pd.DataFrame, subject: str, model: str, out_path: str | os.PathLike
) -> pd.DataFrame:
    """Write :func:`dice_vs_subvolumes`'s rows of ``subject`` and ``model`` (:data:`COLUMNS`)."""
    table = table.assign(subject=subject, model=model)[COLUMNS]
    write_table(table, out_path)
    return table
