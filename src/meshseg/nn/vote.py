"""Per-voxel vote over overlapping subvolume predictions: hard (ties broken by the voters'
confidence), soft (summed probabilities) or the reference's hard vote (ties to the lowest
class)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from meshseg.labels import class_dtype

RULES = ("hard", "soft", "hard-lowest")
MAX_SUBVOLUMES = np.iinfo(np.uint16).max  # the vote counters are uint16


class VoteAggregator:
    """Streams predicted subvolumes into a per-voxel vote.

    Rules (``rule``):

    - ``hard``: the class most crops predict (their argmax); among classes tied on that count,
      the one whose voters were the more confident: the larger sum, over the crops that
      predicted it there, of the softmax probability they gave it (a tie in that sum too goes
      to the lower class).
    - ``soft``: the argmax of the summed (equivalently, mean) softmax probabilities.
    - ``hard-lowest``: the reference's rule (``predictor.py``): count, then argmax, so ties go
      to the lowest class index. The only rule that class indices alone can decide.

    A voxel no crop covered gets class 0.

    Parameters
    ----------
    shape
        Spatial shape of the whole volume, e.g. ``(256, 256, 256)``.
    n_classes
        Number of classes C.
    rule
        One of :data:`RULES`; by default ``hard-lowest``, the one rule that class indices
        alone decide (inference defaults to ``hard``:
        :class:`meshseg.nn.inference.InferenceConfig`).
    slab
        Finished slices voted at a time, which bounds the temporary arrays to
        ``(slots, slab, H, W)`` (``(C, slab, H, W)`` for ``soft``).

    Notes
    -----
    Crops must come in order of their first-axis start ``x`` across :meth:`add` calls (within
    one call, any order; :func:`meshseg.nn.inference.predict_volume` sorts them). A crop of depth
    p then touches only slices ``[x, x + p)``, and every slice above ``x`` is final. So the
    votes are kept for p slices only, in ring buffers over ``(p, H, W)``, and each slice is
    voted as soon as it is final. Nothing is stored per crop, and the result is exact: it
    equals the rule applied to whole-volume counts and sums.

    ``hard`` and ``hard-lowest`` keep, per voxel, a few slots of (class, count, confidence
    sum; no sum for ``hard-lowest``): one per class that some crop predicted there. A voxel
    sees few distinct classes even at 104 classes, and the slots grow by one whenever a voxel
    needs another. Each slot takes 20 MB (8 bytes per voxel of the 38-slice ring at 256^2), so
    the vote's memory follows the classes a voxel actually sees, not the label set
    (``benchmarks/benchmark.py`` measures it with random labels, the worst case: 116 MB at 3
    classes, 282 MB at 104). These rules need
    only each crop's class indices and, for ``hard``, the probability of that class (16 crops
    of 38^3: 4.4 MB), not its whole softmax. ``soft`` sums every class's probability in a
    ``(C, p, H, W)`` float32 ring: 10 MB per class, 1.04 GB at 104 classes, plus the caller's
    batch of probabilities (16 crops at 104 classes: 365 MB).
    """

    def __init__(
        self, shape: tuple[int, int, int], n_classes: int, rule: str = "hard-lowest", slab: int = 8
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown vote rule {rule!r}; choose from {list(RULES)}")
        self.shape = tuple(shape)
        self.n_classes = n_classes
        self.rule = rule
        self.slab = slab
        self._out = np.zeros(self.shape, dtype=class_dtype(n_classes))
        self._front = 0  # slices above this one are voted
        self._added = 0
        self._depth = 0  # the crops' depth p, set by the first add with the ring buffers:
        self._sums: np.ndarray | None = None  # soft: (C, p, H, W) summed probabilities
        self._classes: np.ndarray | None = None  # hard rules: (slots, p, H, W), -1 empty
        self._counts: np.ndarray | None = None  # (slots, p, H, W) votes for the slot's class
        self._confidence: np.ndarray | None = None  # hard: (slots, p, H, W) their summed prob

    @property
    def needs(self) -> str:
        """What :meth:`add` needs: ``labels`` (class indices), ``confidence`` (class indices
        and the probability of each, for ``hard``) or ``probabilities`` (softmax, ``soft``).
        Softmax probabilities are accepted by every rule."""
        return {"hard": "confidence", "soft": "probabilities"}.get(self.rule, "labels")

    def add(
        self,
        predictions: np.ndarray,
        locations: np.ndarray,
        confidence: np.ndarray | None = None,
    ) -> None:
        """Add crops cut at start corners ``locations`` ``(B, 3)``: class indices
        ``(B, p, p, p)`` (with ``confidence``, the probability of each, ``(B, p, p, p)``) or
        softmax probabilities ``(B, C, p, p, p)``, as :attr:`needs` says."""
        locations = np.asarray(locations, dtype=np.int64)
        predictions, confidence = self._check(predictions, locations, confidence)
        if not len(locations):
            return
        order = np.argsort(locations[:, 0], kind="stable")
        if locations[order[0], 0] < self._front:
            raise ValueError(
                f"subvolumes must come in order of their first-axis start "
                f"(got {locations[order[0], 0]} after {self._front})"
            )
        depth = predictions.shape[-3]
        if not self._depth:
            self._allocate(depth)
        elif depth != self._depth:
            raise ValueError(f"subvolumes of depth {depth} after depth {self._depth}")
        for i in order:
            self._finish(locations[i, 0])
            self._accumulate(
                predictions[i], None if confidence is None else confidence[i], locations[i]
            )
        self._added += len(locations)

    def result(self) -> np.ndarray:
        """The voted class per voxel (uint8 for up to 256 classes); ends the vote."""
        self._finish(self.shape[0])
        return self._out

    def _check(self, predictions, locations, confidence):
        """The predictions as this rule takes them (probabilities reduced for the hard rules),
        after checking them against ``locations`` and the rule."""
        if predictions.ndim not in (4, 5) or len(predictions) != len(locations):
            raise ValueError(
                f"predictions {predictions.shape} and locations {locations.shape} do not match"
            )
        if predictions.ndim == 5 and predictions.shape[1] != self.n_classes:
            raise ValueError(
                f"probabilities {predictions.shape} have {predictions.shape[1]} classes, "
                f"not {self.n_classes}"
            )
        if predictions.ndim == 4 and self.needs == "probabilities":
            raise ValueError(
                f"the soft vote needs probabilities (B, C, p, p, p), "
                f"not class indices {predictions.shape}"
            )
        if predictions.ndim == 4 and self.needs == "confidence" and confidence is None:
            raise ValueError(
                "the hard vote needs probabilities (B, C, p, p, p), or class indices with "
                "their confidence"
            )
        if self._added + len(locations) > MAX_SUBVOLUMES:
            raise ValueError(
                f"more than {MAX_SUBVOLUMES} subvolumes would overflow the vote counters"
            )
        if predictions.ndim == 5 and self.needs != "probabilities":
            labels = predictions.argmax(1)
            if self.needs == "confidence":
                confidence = np.take_along_axis(predictions, labels[:, None], 1)[:, 0]
            return labels, confidence
        return predictions, confidence if self.needs == "confidence" else None

    def _allocate(self, depth: int) -> None:
        self._depth = depth
        if self.rule == "soft":
            self._sums = np.zeros((self.n_classes, depth, *self.shape[1:]), np.float32)
            return
        self._classes = np.full((0, depth, *self.shape[1:]), -1, np.int16)
        self._counts = np.zeros(self._classes.shape, np.uint16)
        if self.rule == "hard":
            self._confidence = np.zeros(self._classes.shape, np.float32)
        self._add_slot()

    def _add_slot(self) -> None:
        """One more (class, count, confidence) slot for every voxel of the ring."""
        empty = (1, *self._classes.shape[1:])
        self._classes = np.concatenate([self._classes, np.full(empty, -1, np.int16)])
        self._counts = np.concatenate([self._counts, np.zeros(empty, np.uint16)])
        if self._confidence is not None:
            self._confidence = np.concatenate([self._confidence, np.zeros(empty, np.float32)])

    def _runs(self, first: int, last: int, step: int) -> Iterator[tuple[slice, slice]]:
        """Slices ``[first, last)`` in runs of at most ``step`` that do not wrap around the
        ring: (ring slots, offsets from ``first``) per run."""
        start = first
        while start < last:
            stop = min(start + step, last, start - start % self._depth + self._depth)
            slot = start % self._depth
            yield slice(slot, slot + stop - start), slice(start - first, stop - first)
            start = stop

    def _accumulate(
        self, prediction: np.ndarray, confidence: np.ndarray | None, corner: np.ndarray
    ) -> None:
        """Add one crop (``(p, p, p)`` indices, or ``(C, p, p, p)`` probabilities for ``soft``)
        at ``corner``."""
        x, y, z = corner
        height, width = prediction.shape[-2:]
        for slots, rows in self._runs(x, x + self._depth, self._depth):
            at = (slice(None), slots, slice(y, y + height), slice(z, z + width))
            if self._sums is not None:
                self._sums[at] += prediction[:, rows]
            else:
                self._vote(at, prediction[rows], None if confidence is None else confidence[rows])

    def _vote(self, at: tuple, labels: np.ndarray, confidence: np.ndarray | None) -> None:
        """Count ``labels`` (and add their ``confidence``) into the slots of the voxels ``at``:
        the slot that holds the voxel's class, else its first empty one (adding a slot to
        every voxel when some voxel has none left)."""
        labels = labels.astype(np.int16)[None]
        while True:
            classes = self._classes[at]
            match = classes == labels
            found, empty = match.any(0), classes < 0
            if (found | empty.any(0)).all():
                break
            self._add_slot()
        slot = np.where(found, match.argmax(0), empty.argmax(0))[None]
        np.put_along_axis(classes, slot, labels, 0)
        counts = self._counts[at]
        np.put_along_axis(counts, slot, np.take_along_axis(counts, slot, 0) + 1, 0)
        if confidence is not None:
            sums = self._confidence[at]
            np.put_along_axis(sums, slot, np.take_along_axis(sums, slot, 0) + confidence, 0)

    def _winners(self, slots: slice) -> np.ndarray:
        """The rule's class for each voxel of the ring ``slots``."""
        if self._sums is not None:
            return self._sums[:, slots].argmax(0)
        classes, counts = self._classes[:, slots], self._counts[:, slots]
        top = counts.max(0)
        tied = counts == top
        if self._confidence is not None:
            confidence = self._confidence[:, slots]
            tied &= confidence == np.where(tied, confidence, -1).max(0)
        winner = np.where(tied, classes, self.n_classes).min(0)  # a tie left: the lower class
        return np.where(top > 0, winner, 0)

    def _finish(self, upto: int) -> None:
        """Vote slices ``[front, upto)``, all final, and clear their ring slots."""
        if not self._depth:
            return
        last = min(upto, self._front + self._depth)  # slices past the ring hold no votes
        for slots, rows in self._runs(self._front, last, self.slab):
            self._out[self._front + rows.start : self._front + rows.stop] = self._winners(slots)
            for buffer, empty in (
                (self._sums, 0),
                (self._classes, -1),
                (self._counts, 0),
                (self._confidence, 0),
            ):
                if buffer is not None:
                    buffer[:, slots] = empty
        self._front = max(self._front, upto)
