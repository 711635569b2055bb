"""The report's figures: Dice per class, training curves, Dice against subvolumes, label
overlays and volume agreement.

Each function writes one 150 dpi PNG atomically. Tables may be given as DataFrames or TSV
paths; a missing column or an empty table raises ``ValueError`` naming the table. Every figure
carries a title and, under it, a caption naming the models and settings (:func:`run_caption`).
"""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import nibabel as nib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from meshseg.image.grid import nonzero_box
from meshseg.image.io import ImageError, atomic_path, load_image
from meshseg.labels import LabelSet, load_labelset
from meshseg.nn.models import describe_model

DPI = 150
STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "figure.titlesize": 13,
}
MAX_LEGEND_CLASSES = 16  # beyond this an overlay names its colours through the label set's LUT
MARKERS = "osD^v<>ph*"  # one marker per structure in the volume plot, when there are this few

TableLike = pd.DataFrame | str | os.PathLike


def run_caption(run: Mapping) -> str:
    """The settings behind a figure in two sentences: models, then data.

    ``run`` holds ``models`` (name -> config entry with ``steps`` and ``inference``, or
    ``{"pretrained": path, "inference": ...}``), ``dataset``, ``labelset``, ``test_subjects``,
    ``n_subvolumes`` and ``vote`` (the rule), as rules/common.smk's ``get_run_summary`` builds it.
    """
    models = []
    for name, spec in run["models"].items():
        how = {
            "whole": "whole-volume inference",
            "auto": "its checkpoint's inference mode",
        }.get(spec["inference"], f"{run['n_subvolumes']} subvolumes, {run['vote']} vote")
        what = (
            f"pretrained {spec['pretrained']}"
            if "pretrained" in spec
            else f"{describe_model(spec)}, {spec['steps']} training steps"
        )
        models.append(f"{name} ({what}; {how})")
    return (
        f"Models: {', '.join(models)}. Data: {run['dataset']}, label set {run['labelset']}, "
        f"{run['test_subjects']} test subjects."
    )


def dice_boxplot(dice: TableLike, path: str | os.PathLike, caption: str) -> None:
    """Box plot of Dice per class (x) and model (colour), one point per test subject that
    scores the class (empty Dice: the class is in neither the truth nor the prediction)."""
    table = _table(dice, ["subject", "model", "class", "name", "dice"], "Dice table")
    classes = table.drop_duplicates("class").sort_values("class")
    models = list(dict.fromkeys(table["model"]))
    width = 0.8 / len(models)
    figsize = (min(30.0, max(7.0, 0.3 * len(classes) * len(models) + 2)), 5.0)
    with _figure(
        path,
        f"Dice per class and model ({table['subject'].nunique()} test subjects)",
        caption,
        figsize,
    ) as fig:
        ax = fig.add_subplot()
        for i, (model, colour) in enumerate(zip(models, _colours(len(models)))):
            own = table[table["model"] == model]
            values = [
                own.loc[own["class"] == c, "dice"].dropna().to_numpy() for c in classes["class"]
            ]
            positions = np.arange(len(classes)) + (i - (len(models) - 1) / 2) * width
            ax.boxplot(
                values,
                positions=positions,
                widths=width * 0.85,
                patch_artist=True,
                showfliers=False,
                boxprops={"facecolor": colour, "alpha": 0.5},
                medianprops={"color": colour},
            )
            for x, v in zip(positions, values):
                ax.plot(np.full(len(v), x), v, "o", color=colour, markersize=3)
            ax.plot([], [], "s", color=colour, alpha=0.6, label=model)
        ax.set_xticks(
            np.arange(len(classes)), classes["name"], rotation=90 if len(classes) > 8 else 0
        )
        ax.set(xlabel="class", ylabel="Dice", ylim=(-0.02, 1.02), xlim=(-0.6, len(classes) - 0.4))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="model", loc="lower right")


def training_curves(curves: Mapping[str, TableLike], path: str | os.PathLike, caption: str) -> None:
    """Training loss and validation foreground Dice against the optimizer step, per model."""
    if not curves:
        raise ValueError("training curves: no models given")
    tables = {
        m: _table(c, ["step", "loss", "val_dice"], f"training curve of {m}")
        for m, c in curves.items()
    }
    with _figure(path, "Training curves", caption, (12.0, 4.5)) as fig:
        loss_ax, dice_ax = fig.subplots(1, 2)
        for (model, table), colour in zip(tables.items(), _colours(len(tables))):
            loss_ax.plot(table["step"], table["loss"], "o-", color=colour, label=model)
            dice_ax.plot(table["step"], table["val_dice"], "o-", color=colour, label=model)
        loss_ax.set(
            xlabel="optimizer step",
            ylabel="training cross-entropy loss (nats)",
            title="Loss (mean since the previous point)",
        )
        dice_ax.set(
            xlabel="optimizer step",
            ylabel="validation foreground Dice",
            ylim=(-0.02, 1.02),
            title="Validation Dice",
        )
        for ax in (loss_ax, dice_ax):
            ax.grid(alpha=0.3)
            ax.legend(title="model")


def dice_vs_subvolumes_plot(
    tables: Sequence[TableLike], path: str | os.PathLike, caption: str
) -> None:
    """Mean (+- sd over subjects) foreground and macro Dice against the number of subvolumes.

    Rows with ``inference == "whole"`` (whole-volume inference, ``n_subvolumes`` 0) are drawn
    as dashed horizontal lines in their model's colour.
    """
    columns = ["model", "subject", "inference", "n_subvolumes", "foreground_dice", "macro_dice"]
    if not tables:
        raise ValueError("Dice against subvolumes: no experiment tables given")
    table = pd.concat([_table(t, columns, "experiment table") for t in tables], ignore_index=True)
    unknown = sorted(set(table["inference"]) - {"vote", "whole"})
    if unknown:
        raise ValueError(f"experiment table: inference must be 'vote' or 'whole', got {unknown}")
    votes = table[table["inference"] == "vote"]
    models = list(dict.fromkeys(table["model"]))
    with _figure(
        path,
        f"Dice against the number of subvolumes ({table['subject'].nunique()} test subjects)",
        caption,
        (12.0, 4.5),
    ) as fig:
        axes = fig.subplots(1, 2)
        for ax, score, name in zip(
            axes,
            ("foreground_dice", "macro_dice"),
            (
                "foreground Dice (mean over structures)",
                "macro Dice (all classes, background included)",
            ),
        ):
            for model, colour in zip(models, _colours(len(models))):
                own = votes[votes["model"] == model].groupby("n_subvolumes")[score]
                if own.ngroups:
                    ax.errorbar(
                        own.mean().index,
                        own.mean(),
                        yerr=own.std().fillna(0),
                        fmt="o-",
                        color=colour,
                        capsize=3,
                        label=f"{model}, majority vote",
                    )
                whole = table[(table["model"] == model) & (table["inference"] == "whole")][score]
                if len(whole):
                    ax.axhline(
                        whole.mean(), color=colour, linestyle="--", label=f"{model}, whole volume"
                    )
            if len(votes) and votes["n_subvolumes"].max() > 4 * votes["n_subvolumes"].min():
                ax.set_xscale("log", base=2)
            ax.set(xlabel="subvolumes per subject (count)", ylabel=name)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=9)


def volume_agreement(volumes: TableLike, path: str | os.PathLike, caption: str) -> None:
    """Predicted against true volume (cm^3) of every foreground structure and subject."""
    table = _table(
        volumes, ["subject", "model", "class", "name", "predicted_mm3", "true_mm3"], "volume table"
    )
    table = table[(table["class"] > 0) & table["true_mm3"].notna()]
    if table.empty:
        raise ValueError("volume table: no foreground structure (class > 0) of a labelled subject")
    true, predicted = table["true_mm3"] / 1000, table["predicted_mm3"] / 1000
    positive = true[true > 0]
    log_axes = bool(len(positive)) and positive.max() > 100 * positive.min()
    names = list(dict.fromkeys(table.sort_values("class")["name"]))
    markers = dict(zip(names, MARKERS)) if len(names) <= len(MARKERS) else {}
    models = list(dict.fromkeys(table["model"]))
    title = (
        f"Structure volumes: prediction against truth ({table['subject'].nunique()} test subjects)"
    )
    with _figure(path, title, caption, (7.5, 6.5)) as fig:
        ax = fig.add_subplot()
        for model, colour in zip(models, _colours(len(models))):
            own = table["model"] == model
            error = (predicted[own] - true[own]).abs().sum() / true[own].sum()
            for name, rows in table[own].groupby("name", sort=False):
                ax.plot(
                    true[rows.index],
                    predicted[rows.index],
                    markers.get(name, "o"),
                    color=colour,
                    alpha=0.8,
                    linestyle="none",
                )
            ax.plot([], [], "o", color=colour, label=f"{model} (total |error| {error:.0%})")
        for name, marker in markers.items():
            ax.plot([], [], marker, color="grey", label=name)
        high = max(true.max(), predicted.max()) * 1.1
        low = positive.min() / 2 if log_axes else 0.0
        ax.plot([low, high], [low, high], "--", color="black", linewidth=1, label="identity")
        if log_axes:
            ax.set(xscale="log", yscale="log")
        ax.set(
            xlabel="true volume (cm³)",
            ylabel="predicted volume (cm³)",
            xlim=(low, high),
            ylim=(low, high),
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)


@dataclass(frozen=True)
class OverlayImages:
    """What :func:`overlay` draws: one subject's T1, its truth and each model's labels (by model
    name), all on the T1's grid."""

    subject: str
    t1: str | os.PathLike
    truth: str | os.PathLike
    predictions: Mapping[str, str | os.PathLike]


def overlay(
    images: OverlayImages, labelset: str | LabelSet, path: str | os.PathLike, caption: str
) -> None:
    """Three orthogonal slices through the brain's centre: T1 with the truth (first row) and
    each model's labels (one row each) in the label set's colours."""
    if not images.predictions:
        raise ValueError("overlay: no predictions given")
    labelset = labelset if isinstance(labelset, LabelSet) else load_labelset(labelset)
    image, zooms = _canonical(images.t1)
    rows = {"truth": images.truth, **images.predictions}
    classes = {}
    for name, source in rows.items():
        labels, _ = _canonical(source, labels=True)
        if labels.shape != image.shape:
            raise ImageError(
                source, f"shape {labels.shape} does not match the T1 {images.t1} {image.shape}"
            )
        classes[name] = labelset.to_classes(labels, source=str(source))
    brain = classes["truth"] > 0 if classes["truth"].any() else image > 0.05
    box = nonzero_box(brain, margin=8) or tuple(slice(0, n) for n in image.shape)
    centre = [(s.start + s.stop) // 2 for s in box]
    colours = np.array([(*np.array(c.rgb) / 255, 1.0) for c in labelset.classes])
    colours[0, 3] = 0.0  # background stays transparent
    views = [("sagittal", 0, ("y", "z")), ("coronal", 1, ("x", "z")), ("axial", 2, ("x", "y"))]
    with _figure(
        path,
        f"{images.subject}: truth and predicted labels",
        caption,
        (11.0, 3.4 * len(rows) + 0.8),
    ) as fig:
        axes = fig.subplots(len(rows), 3, squeeze=False)
        for r, (name, labels) in enumerate(classes.items()):
            for c, (view, axis, (h, v)) in enumerate(views):
                index = list(box)
                index[axis] = centre[axis]
                keep = [a for a in range(3) if a != axis]
                extent = [
                    0,
                    (box[keep[0]].stop - box[keep[0]].start) * zooms[keep[0]],
                    0,
                    (box[keep[1]].stop - box[keep[1]].start) * zooms[keep[1]],
                ]
                ax = axes[r, c]
                ax.imshow(image[tuple(index)].T, cmap="gray", origin="lower", extent=extent)
                ax.imshow(
                    colours[labels[tuple(index)].T],
                    origin="lower",
                    extent=extent,
                    alpha=0.5,
                    interpolation="nearest",
                )
                if r == 0:
                    ax.set_title(f"{view} (slice {centre[axis]})")
                ax.set_xlabel(f"{h} (mm)")
                ax.set_ylabel(
                    f"{name}\n{v} (mm)" if c == 0 else f"{v} (mm)",
                    fontweight="bold" if c == 0 else "normal",
                )
        present = sorted(set().union(*(np.unique(v).tolist() for v in classes.values())) - {0})
        if len(present) <= MAX_LEGEND_CLASSES:
            fig.legend(
                [Patch(color=colours[k, :3]) for k in present],
                [labelset.classes[k].name for k in present],
                loc="outside right upper",
            )


def _table(source: TableLike, columns: Sequence[str], what: str) -> pd.DataFrame:
    """A non-empty table with ``columns``, read from a TSV unless given as a DataFrame."""
    table = source if isinstance(source, pd.DataFrame) else pd.read_csv(source, sep="\t")
    name = what if isinstance(source, pd.DataFrame) else f"{what} {source}"
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: missing columns {missing} (has {list(table.columns)})")
    if table.empty:
        raise ValueError(f"{name}: no rows")
    return table


def _colours(n: int) -> list:
    """``n`` distinct colours (tab10, then tab20)."""
    return list(matplotlib.colormaps["tab10" if n <= 10 else "tab20"].colors[:n])


def _canonical(
    path: str | os.PathLike, labels: bool = False
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Voxels of an image (a label map if ``labels``, see :func:`load_image`) turned to RAS+ axes
    (closest canonical), and its voxel sizes (mm)."""
    img = nib.as_closest_canonical(load_image(path, labels=labels))
    return np.asanyarray(img.dataobj), img.header.get_zooms()[:3]


@contextlib.contextmanager
def _figure(
    path: str | os.PathLike, title: str, caption: str, figsize: tuple[float, float]
) -> Iterator[Figure]:
    """A figure to draw on; on exit it gets the title and caption and is saved atomically."""
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=figsize, layout="constrained")
        fig.suptitle(title, fontweight="bold")
        yield fig
        fig.text(
            0.0,
            0.0,
            textwrap.fill(caption, width=int(figsize[0] * 13)),
            ha="left",
            va="top",
            fontsize=9,
            color="0.25",
        )
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
