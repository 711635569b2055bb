"""Dice and structure-volume bias of each vote rule (meshseg.nn.vote.RULES) on a run's test
subjects.

Usage (after ``snakemake all``, which trains the models and prepares the subjects)::

    .venv/bin/python benchmarks/vote_rules.py [--results results] [--subvolumes 512]

Every rule votes over the same crops of the same trained model (the workflow's inference
settings but the rule). Volume bias is (predicted - true) / true volume of a structure,
averaged over the test subjects; ``changed`` is the share of voxels whose label differs from
the reference's rule (``hard-lowest``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from meshseg.image.io import load_volume
from meshseg.metrics import dice_per_class, foreground_dice
from meshseg.nn import checkpoint as checkpoints
from meshseg.nn.inference import InferenceConfig, predict_volume
from meshseg.nn.runtime import Compute
from meshseg.nn.subvolumes import inference_locations
from meshseg.nn.vote import RULES


def score_rules(
    loaded: checkpoints.LoadedModel,
    image_path: Path,
    truth_path: Path,
    config: InferenceConfig,
    compute: Compute,
) -> list[dict]:
    """One row per rule and class: Dice, predicted and true voxels, voxels changed."""
    labelset, patch = loaded.labelset, loaded.patch
    image = load_volume(image_path)[0].astype(np.float32, copy=False)
    truth = labelset.to_classes(load_volume(truth_path)[0], str(truth_path))
    locations = inference_locations(
        config.n_subvolumes, image.shape[0], patch, config.sd, np.random.default_rng(config.seed)
    )
    n = labelset.n_classes
    votes = {
        rule: predict_volume(loaded, image, locations, config.batch_size, compute, rule)
        for rule in RULES
    }
    rows = []
    for rule, classes in votes.items():
        dice = dice_per_class(truth, classes, n)
        changed = float((classes != votes["hard-lowest"]).mean())
        rows += [
            {
                "rule": rule,
                "class": c,
                "name": labelset.names[c],
                "dice": dice[c],
                "foreground_dice": foreground_dice(dice),
                "predicted": int((classes == c).sum()),
                "true": int((truth == c).sum()),
                "changed": changed,
            }
            for c in range(1, n)
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--subvolumes", type=int, default=512)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    sheet = pd.read_csv(args.results / "subjects.tsv", sep="\t")
    config = InferenceConfig(n_subvolumes=args.subvolumes, threads=args.threads)
    compute = Compute.from_config(config)
    rows = []
    for checkpoint in sorted(args.results.glob("models/*/checkpoint.pt")):
        loaded = checkpoints.load(checkpoint)
        for subject in sheet.loc[sheet["split"] == "test", "subject"]:
            prepared = args.results / "prepared" / subject
            for row in score_rules(
                loaded, prepared / "t1.nii.gz", prepared / "labels.nii.gz", config, compute
            ):
                rows.append({"model": checkpoint.parent.name, "subject": subject, **row})
    table = pd.DataFrame(rows)
    table["bias_percent"] = 100 * (table["predicted"] - table["true"]) / table["true"]
    summary = table.groupby(["model", "rule", "name"], sort=False).agg(
        dice=("dice", "mean"),
        bias_percent=("bias_percent", "mean"),
        foreground_dice=("foreground_dice", "mean"),
        changed_percent=("changed", "mean"),
    )
    summary["changed_percent"] *= 100
    print(f"{args.subvolumes} subvolumes, {table['subject'].nunique()} test subjects")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
