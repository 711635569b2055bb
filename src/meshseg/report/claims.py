"""Catalyst.Neuro's claims as a measured table: MeshNet is >300x smaller than the U-Net, up to
9x faster at inference, with competitive Dice (docs/references.md: The reference: Catalyst.Neuro).

Two blocks. "this run": every (MeshNet, U-Net) pair of models trained here, from
comparison.tsv and the per-subject Dice. "reference-size models": MeshNet small and large
against the 64-wide U-Net (25.1 M parameters), untrained, sized from the architecture and
timed on this run's device by meshseg.report.speed. :func:`compose_claims` is a pure
function of those tables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from meshseg.image.io import write_table
from meshseg.report.tables import subject_scores

CLAIMS_COLUMNS = ["block", "claim", "measured", "claimed", "verdict", "detail"]
RUN, REFERENCE = "this run", "reference-size models"

SIZE_CLAIM = 300.0  # ">300x smaller": 25.1 M / 72.5 k = 346x by parameters
SPEED_CLAIM = 116 / 13  # "up to 9x faster": the reference's 116 vs 13 subvolumes/s
DICE_MARGIN = (
    0.02  # "competitive": MeshNet's mean foreground Dice at most this far below the U-Net's
)

# The claims: name (of a MeshNet and a U-Net), the claimed value in words, and the threshold
# the measured value must reach for the claim to hold.
CLAIMS = {
    "parameters": ("parameters ratio, {unet} / {meshnet}", f"over {SIZE_CLAIM:.0f}x", SIZE_CLAIM),
    "weight_bytes": (
        "weight-bytes ratio, {unet} / {meshnet}",
        f"over {SIZE_CLAIM:.0f}x",
        SIZE_CLAIM,
    ),
    "checkpoint_bytes": (
        "checkpoint-bytes ratio, {unet} / {meshnet}",
        f"over {SIZE_CLAIM:.0f}x",
        SIZE_CLAIM,
    ),
    "speed": (
        "inference speed ratio (subvolumes/s), {meshnet} / {unet}",
        f"up to 9x (116 vs 13 subvolumes/s: {SPEED_CLAIM:.1f}x)",
        SPEED_CLAIM,
    ),
    "dice": (
        "foreground Dice difference, {meshnet} - {unet}",
        f"competitive (at least -{DICE_MARGIN:g})",
        -DICE_MARGIN,
    ),
}


def compose_claims(
    comparison: pd.DataFrame, scores: pd.DataFrame, reference: pd.DataFrame | None
) -> pd.DataFrame:
    """The claims table (:data:`CLAIMS_COLUMNS`) of both blocks.

    ``comparison`` is results/comparison.tsv, ``scores`` the per-subject foreground Dice
    (subject, model, foreground_dice) and ``reference`` results/reference_speed.tsv, or None
    when the reference-size models were not measured.
    """
    models = comparison.set_index("model")
    rows = _block(
        RUN,
        models,
        models.index.to_series(),
        scores,
        "the run's checkpoint files (one trained here holds the Adam state too)",
    )
    if reference is None:
        rows += _missing(REFERENCE, "not measured: config report.reference_models is false")
    else:
        models = reference.set_index("model")
        rows += _block(
            REFERENCE,
            models,
            models["description"],
            None,
            "weights only (a saved state dict), as a released model ships",
        )
    return pd.DataFrame(rows, columns=CLAIMS_COLUMNS)


def _block(
    block: str,
    models: pd.DataFrame,
    labels: pd.Series,
    scores: pd.DataFrame | None,
    checkpoint: str,
) -> list[dict]:
    """Claims rows for every (MeshNet, U-Net) pair of ``models`` (indexed by model name)."""
    meshnets = models.index[models["arch"] == "meshnet"]
    unets = models.index[models["arch"] == "unet"]
    if meshnets.empty or unets.empty:
        return _missing(
            block,
            f"not measured: needs a MeshNet and a U-Net, the models are {dict(models['arch'])}",
        )
    rows = []
    for unet in unets:
        for meshnet in meshnets:
            names = {"meshnet": labels[meshnet], "unet": labels[unet]}
            rows += _pair_rows(block, names, models.loc[meshnet], models.loc[unet], checkpoint)
            rows.append(_dice_row(block, names, scores, meshnet, unet))
    return rows


def _pair_rows(
    block: str, names: dict, meshnet: pd.Series, unet: pd.Series, checkpoint: str
) -> list[dict]:
    """Size ratios (U-Net / MeshNet) and the speed ratio (MeshNet / U-Net) of one pair."""
    rows = [
        _row(
            block,
            "parameters",
            names,
            unet["parameters"] / meshnet["parameters"],
            f"{unet['parameters']:,} vs {meshnet['parameters']:,} parameters",
        ),
        _row(
            block,
            "weight_bytes",
            names,
            unet["weight_bytes"] / meshnet["weight_bytes"],
            f"{_mb(unet['weight_bytes'])} vs {_mb(meshnet['weight_bytes'])} of state-dict tensors",
        ),
        _row(
            block,
            "checkpoint_bytes",
            names,
            unet["checkpoint_bytes"] / meshnet["checkpoint_bytes"],
            f"{_mb(unet['checkpoint_bytes'])} vs {_mb(meshnet['checkpoint_bytes'])}; {checkpoint}",
        ),
    ]
    fast, slow = meshnet["subvolumes_per_second"], unet["subvolumes_per_second"]
    if not (fast > 0 and slow > 0):
        detail = "no subvolume rate (whole-volume inference)"
        return rows + [_row(block, "speed", names, float("nan"), detail)]
    devices = sorted({meshnet["device"], unet["device"]})
    detail = f"{fast:.1f} vs {slow:.1f} subvolumes/s on {' / '.join(devices)}"
    if len(devices) > 1:
        detail += "; the devices differ, so the ratio compares machines too"
    return rows + [_row(block, "speed", names, fast / slow, detail)]


def _dice_row(
    block: str, names: dict, scores: pd.DataFrame | None, meshnet: str, unet: str
) -> dict:
    """MeshNet - U-Net foreground Dice, paired by subject, with the sd of the differences."""
    if scores is None:
        return _row(block, "dice", names, float("nan"), "not measured: untrained models")
    table = scores.pivot(index="subject", columns="model", values="foreground_dice")
    if not {meshnet, unet} <= set(table.columns):
        return _row(block, "dice", names, float("nan"), "no subject scored by both models")
    paired = (table[meshnet] - table[unet]).dropna()
    sd = f"{paired.std(ddof=1):.3f}" if len(paired) > 1 else "n/a"
    return _row(
        block,
        "dice",
        names,
        paired.mean(),
        f"sd {sd} of per-subject differences, n = {len(paired)} subjects; "
        f"mean {meshnet} {table[meshnet].mean():.3f}, {unet} {table[unet].mean():.3f}",
    )


def _row(block: str, key: str, names: dict, measured: float, detail: str) -> dict:
    """One row of claim ``key`` (:data:`CLAIMS`); holds when ``measured`` reaches the threshold."""
    name, claimed, threshold = CLAIMS[key]
    if not np.isfinite(measured):
        verdict = "not measured"
    else:
        verdict = "holds" if measured >= threshold else "does not hold"
    return {
        "block": block,
        "claim": name.format(**names),
        "measured": float(measured),
        "claimed": claimed,
        "verdict": verdict,
        "detail": detail,
    }


def _missing(block: str, detail: str) -> list[dict]:
    """The block's claims, none measured."""
    return [
        _row(block, key, {"meshnet": "MeshNet", "unet": "U-Net"}, float("nan"), detail)
        for key in CLAIMS
    ]


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def summarise_claims(
    comparison_path: str | os.PathLike,
    dice_path: str | os.PathLike,
    volumes_path: str | os.PathLike,
    reference_paths: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
) -> pd.DataFrame:
    """Write results/claims.tsv from the run's tables and, if given, reference_speed.tsv."""
    keys = ["subject", "model", "class", "id", "name"]
    structures = pd.read_csv(dice_path, sep="\t").merge(
        pd.read_csv(volumes_path, sep="\t"), on=keys
    )
    reference = (
        pd.concat([pd.read_csv(p, sep="\t") for p in reference_paths], ignore_index=True)
        if reference_paths
        else None
    )
    claims = compose_claims(
        pd.read_csv(comparison_path, sep="\t"), subject_scores(structures), reference
    )
    write_table(claims, out_path, float_format="%.4g")
    return claims
