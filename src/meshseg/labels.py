"""Label sets: which label ids in a label file become which training class.

A label set is a TSV (``src/meshseg/labelsets/<name>.tsv`` or any path) with one row per
class::

    class  id  name          R    G    B    source_ids
    0      0   Unknown       0    0    0    0
    1      1   gray-matter   205  62   78   1

``class`` is the contiguous index the network predicts, ``id`` the value written into the
label maps meshseg produces (FreeSurfer ids for Mindboggle sets), ``source_ids`` the
comma-separated ids in input label files that belong to the class. Class 0 is background;
ids it lists besides 0 are ids that are no class (stray or unwanted labels).

Lines starting with ``#`` are comments (``# source: ...`` cites where the ids come from).
One comment line says what happens to ids the set does not list::

    # unlisted: background

maps them to class 0 too; without it they are an error. Every id other than 0 that becomes
class 0 is logged with its voxel count.
Label files pass :func:`integer_labels` before they reach :meth:`LabelSet.to_classes`: floats
within 1e-3 of whole numbers are rounded, others refused.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

log = logging.getLogger(__name__)

COLUMNS = ["class", "id", "name", "R", "G", "B", "source_ids"]
UNLISTED = ("error", "background")  # what to_classes does with ids no class lists
UNLISTED_LINE = re.compile(r"^#\s*unlisted:\s*(\S+)\s*$")


@dataclass(frozen=True)
class LabelClass:
    """One row of a label set."""

    index: int
    id: int
    name: str
    rgb: tuple[int, int, int]
    source_ids: tuple[int, ...]


@dataclass(frozen=True)
class LabelSet:
    """An ordered list of classes; ``classes[i].index == i``."""

    name: str
    classes: tuple[LabelClass, ...]
    unlisted: str = "error"

    def __post_init__(self) -> None:
        if self.unlisted not in UNLISTED:
            raise ValueError(
                f"label set {self.name}: unlisted must be one of {UNLISTED}, got {self.unlisted!r}"
            )
        indices = [c.index for c in self.classes]
        if indices != list(range(len(indices))):
            raise ValueError(
                f"label set {self.name}: class indices must be 0..n-1 in order, got {indices}"
            )
        for what, values in (
            ("id", [c.id for c in self.classes]),
            ("source id", [s for c in self.classes for s in c.source_ids]),
        ):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"label set {self.name}: {what}s listed more than once: {dupes}")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    def to_classes(self, ids: np.ndarray, source: str = "labels") -> np.ndarray:
        """Map a volume of label ids to class indices (uint8 or int16).

        Ids the set does not list become class 0 when ``unlisted == "background"``; otherwise
        they raise ``ValueError`` naming ``source`` and the offending ids with their voxel
        counts. Ids other than 0 that become class 0 are logged (one line naming ``source``,
        with voxel counts).
        """
        ids = np.asarray(ids)
        lookup = {s: c.index for c in self.classes for s in c.source_ids}
        values, counts, inverse = count_values(ids)
        unknown = {int(v): int(n) for v, n in zip(values, counts) if int(v) not in lookup}
        if unknown and self.unlisted == "error":
            raise ValueError(
                f"{source}: label ids not in label set {self.name!r} (id: voxels) {unknown}"
            )
        background = {
            int(v): int(n) for v, n in zip(values, counts) if v != 0 and lookup.get(int(v), 0) == 0
        }
        if background:
            log.info(
                "%s: label ids mapped to background by label set %r (id: voxels) %s",
                source,
                self.name,
                background,
            )
        table = np.array([lookup.get(int(v), 0) for v in values], class_dtype(self.n_classes))
        return table[inverse].reshape(ids.shape)

    def to_ids(self, classes: np.ndarray) -> np.ndarray:
        """Map class indices back to the set's label ids (int16, or int32 for large ids)."""
        table = np.array([c.id for c in self.classes])
        dtype = smallest_int_dtype(table.min(), table.max(), (np.int16, np.int32))
        return table.astype(dtype)[np.asarray(classes)]

    def lut_text(self) -> str:
        """FreeSurfer colour-table text (``id name R G B A``) for viewers such as Freeview."""
        lines = [
            f"# FreeSurfer colour LUT for meshseg label set {self.name}",
            "#No. Label-Name R G B A",
        ]
        lines += [
            f"{c.id:<5d} {c.name:<40s} {c.rgb[0]:>3d} {c.rgb[1]:>3d} {c.rgb[2]:>3d} 0"
            for c in self.classes
        ]
        return "\n".join(lines) + "\n"

    def tsv_text(self) -> str:
        """The set as a label-set TSV (the module docstring's format; :func:`load_labelset`
        reads it back)."""
        lines = [f"# unlisted: {self.unlisted}", "\t".join(COLUMNS)]
        lines += [
            f"{c.index}\t{c.id}\t{c.name}\t{c.rgb[0]}\t{c.rgb[1]}\t{c.rgb[2]}\t"
            + ",".join(map(str, c.source_ids))
            for c in self.classes
        ]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        """Plain-data form stored inside checkpoints."""
        return {
            "name": self.name,
            "classes": [asdict(c) for c in self.classes],
            "unlisted": self.unlisted,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LabelSet:
        classes = tuple(
            LabelClass(
                index=c["index"],
                id=c["id"],
                name=c["name"],
                rgb=tuple(c["rgb"]),
                source_ids=tuple(c["source_ids"]),
            )
            for c in data["classes"]
        )
        return cls(name=data["name"], classes=classes, unlisted=data.get("unlisted", "error"))


def integer_labels(data: np.ndarray) -> np.ndarray:
    """Labels as int16 if they fit, else int32; floats rounded once checked to be whole.

    Label files are sometimes stored as floats (some Mindboggle-101 files are); a value more
    than 1e-3 from a whole number, or NaN, raises ValueError.
    """
    if data.dtype.kind == "f":
        rounded = np.rint(data)
        worst = float(np.abs(data - rounded).max(initial=0.0))
        if not worst <= 1e-3:  # also catches NaN
            raise ValueError(
                f"label image has non-integral values ({worst:.3g} from a whole number)"
            )
        data = rounded
    elif data.dtype.kind not in "iub":
        raise ValueError(f"label image has dtype {data.dtype}; expected integers")
    low, high = min(data.min(), 0), max(data.max(), 0)  # 0 fills the space beyond the input
    return data.astype(smallest_int_dtype(low, high, (np.int16, np.int32)))


def smallest_int_dtype(
    low: int, high: int, dtypes: Sequence[type[np.integer]] = (np.uint8, np.int16, np.int32)
) -> type[np.integer]:
    """The first of ``dtypes`` that holds every integer in ``low..high`` (else ValueError)."""
    for dtype in dtypes:
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return dtype
    raise ValueError(f"label values {low}..{high} do not fit {np.dtype(dtypes[-1]).name}")


def count_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``values``, their counts, and each value's index among them (flattened),
    as ``np.unique`` gives them; integers within a range of 2^20 are counted by
    ``np.bincount`` instead of sorted (30x faster at 256^3)."""
    flat = values.ravel()
    countable = flat.dtype.kind in "iu" and flat.size > 0
    low = int(flat.min()) if countable else 0
    if not countable or int(flat.max()) - low >= 2**20:
        distinct, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
        return distinct, counts, inverse
    shifted = flat.astype(np.intp) - low
    counts = np.bincount(shifted)
    present = np.flatnonzero(counts)
    rank = np.zeros(len(counts), np.intp)
    rank[present] = np.arange(len(present))
    return (present + low).astype(flat.dtype), counts[present], rank[shifted]


def class_dtype(n_classes: int) -> type[np.integer]:
    """The dtype of a volume of class indices: uint8 up to 256 classes, else int16."""
    return smallest_int_dtype(0, n_classes - 1, (np.uint8, np.int16))


def largest_component(classes: np.ndarray) -> np.ndarray:
    """``classes`` with every voxel outside the largest 26-connected component of the non-zero
    classes (all together, not per class) set to 0, as brainchop's post-processing does."""
    components, n = ndimage.label(classes != 0, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return classes
    largest = np.bincount(components.ravel())[1:].argmax() + 1
    return np.where(components == largest, classes, 0).astype(classes.dtype)


def available_labelsets() -> list[str]:
    """Names of the label sets shipped with meshseg."""
    folder = resources.files("meshseg") / "labelsets"
    return sorted(p.name.removesuffix(".tsv") for p in folder.iterdir() if p.name.endswith(".tsv"))


def load_labelset(name_or_path: str | os.PathLike) -> LabelSet:
    """Load a shipped label set by name, or any label-set TSV by path."""
    path = Path(name_or_path)
    if not path.is_file():
        shipped = resources.files("meshseg") / "labelsets" / f"{name_or_path}.tsv"
        if not shipped.is_file():
            raise ValueError(
                f"label set {str(name_or_path)!r} is neither a file nor one of "
                f"the shipped sets {available_labelsets()}"
            )
        path = Path(str(shipped))
    table = pd.read_csv(path, sep="\t", comment="#", dtype=str)
    flags = [m.group(1) for m in map(UNLISTED_LINE.match, path.read_text().splitlines()) if m]
    if list(table.columns) != COLUMNS:
        raise ValueError(f"{path}: label set columns must be {COLUMNS}, got {list(table.columns)}")
    try:
        classes = tuple(
            LabelClass(
                index=int(row["class"]),
                id=int(row["id"]),
                name=row["name"],
                rgb=(int(row["R"]), int(row["G"]), int(row["B"])),
                source_ids=tuple(int(s) for s in str(row["source_ids"]).split(",")),
            )
            for _, row in table.iterrows()
        )
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if len(flags) > 1:
        raise ValueError(f"{path}: more than one '# unlisted:' line: {flags}")
    return LabelSet(
        name=path.name.removesuffix(".tsv"),
        classes=classes,
        unlisted=flags[0] if flags else "error",
    )
