import pandas as pd
import pytest

from meshseg.report.claims import CLAIMS_COLUMNS, REFERENCE, RUN, compose_claims, summarise_claims
from meshseg.report.speed import REFERENCE_COLUMNS

CPU = "cpu (2 threads, bf16)"


def comparison(meshnet_rate=116.0, unet_rate=13.0, **extra):
    """Two trained models with the reference's sizes and speeds.

    docs/references.md: MeshNet, Published numbers.
    """
    rows = [
        {
            "model": "meshnet",
            "arch": "meshnet",
            "parameters": 72_516,
            "weight_bytes": 300_000,
            "checkpoint_bytes": 900_000,
            "subvolumes_per_second": meshnet_rate,
            "device": CPU,
        },
        {
            "model": "unet",
            "arch": "unet",
            "parameters": 25_115_139,
            "weight_bytes": 100_500_000,
            "checkpoint_bytes": 301_000_000,
            "subvolumes_per_second": unet_rate,
            "device": CPU,
        },
    ]
    return pd.DataFrame(rows + list(extra.values()))


def scores(differences=(0.01, -0.02, 0.0)):
    """Per-subject foreground Dice: the U-Net 0.8 and MeshNet 0.8 + difference."""
    rows = []
    for i, d in enumerate(differences):
        rows += [
            {"subject": f"s{i}", "model": "unet", "foreground_dice": 0.8},
            {"subject": f"s{i}", "model": "meshnet", "foreground_dice": 0.8 + d},
        ]
    return pd.DataFrame(rows)


def reference(unet_rate=9.4):
    rows = [
        ("meshnet_small", "meshnet", "MeshNet small", 72_516, 29.0),
        ("meshnet_large", "meshnet", "MeshNet large", 820_266, 3.1),
        ("unet_64", "unet", "U-Net width 64", 25_115_139, unet_rate),
    ]
    return pd.DataFrame(
        [
            {
                "model": m,
                "arch": a,
                "description": d,
                "n_classes": 3,
                "parameters": p,
                "weight_bytes": 4 * p,
                "checkpoint_bytes": 4 * p + 10_000,
                "subvolumes_per_second": r,
                "batch_size": 16,
                "patch": 38,
                "batches": 3,
                "device": CPU,
            }
            for m, a, d, p, r in rows
        ],
        columns=REFERENCE_COLUMNS,
    )


def row(claims, block, start):
    """The one row of ``block`` whose claim starts with ``start``."""
    hits = claims[(claims["block"] == block) & claims["claim"].str.startswith(start)]
    assert len(hits) == 1, hits
    return hits.iloc[0]


def test_this_run_ratios_and_verdicts():
    claims = compose_claims(comparison(), scores(), reference())
    assert list(claims.columns) == CLAIMS_COLUMNS
    size = row(claims, RUN, "parameters ratio, unet / meshnet")
    assert size["measured"] == pytest.approx(25_115_139 / 72_516) and size["verdict"] == "holds"
    assert row(claims, RUN, "weight-bytes ratio")["measured"] == pytest.approx(335.0)
    assert row(claims, RUN, "checkpoint-bytes ratio")["verdict"] == "holds"
    speed = row(claims, RUN, "inference speed ratio (subvolumes/s), meshnet / unet")
    assert speed["measured"] == pytest.approx(116 / 13) and speed["verdict"] == "holds"
    assert CPU in speed["detail"]
    dice = row(claims, RUN, "foreground Dice difference, meshnet - unet")
    assert dice["measured"] == pytest.approx(-0.01 / 3) and dice["verdict"] == "holds"
    assert "sd 0.015 of per-subject differences, n = 3 subjects" in dice["detail"]


def test_verdicts_flip_when_the_numbers_change():
    small = comparison(meshnet_rate=50.0)
    small.loc[small["model"] == "unet", ["parameters", "weight_bytes", "checkpoint_bytes"]] = [
        1_600_000,
        6_400_000,
        19_000_000,
    ]
    claims = compose_claims(small, scores((-0.05, -0.03)), None)
    for start in (
        "parameters ratio",
        "weight-bytes ratio",
        "checkpoint-bytes ratio",
        "inference speed ratio",
        "foreground Dice difference",
    ):
        assert row(claims, RUN, start)["verdict"] == "does not hold", start
    assert row(claims, RUN, "foreground Dice difference")["measured"] == pytest.approx(-0.04)


def test_reference_block_compares_each_meshnet_with_the_unet():
    claims = compose_claims(comparison(), scores(), reference())
    block = claims[claims["block"] == REFERENCE]
    assert len(block) == 2 * 5  # MeshNet small and large, five claims each
    small = row(claims, REFERENCE, "parameters ratio, U-Net width 64 / MeshNet small")
    assert small["measured"] == pytest.approx(346.3, abs=0.1) and small["verdict"] == "holds"
    large = row(claims, REFERENCE, "parameters ratio, U-Net width 64 / MeshNet large")
    assert large["measured"] == pytest.approx(30.6, abs=0.1) and large["verdict"] == "does not hold"
    speed = row(claims, REFERENCE, "inference speed ratio (subvolumes/s), MeshNet small")
    assert speed["measured"] == pytest.approx(29.0 / 9.4) and speed["verdict"] == "does not hold"
    assert (
        row(
            compose_claims(comparison(), scores(), reference(unet_rate=3.0)),
            REFERENCE,
            "inference speed ratio (subvolumes/s), MeshNet small",
        )["verdict"]
        == "holds"
    )
    dice = row(claims, REFERENCE, "foreground Dice difference, MeshNet small")
    assert dice["verdict"] == "not measured" and "untrained" in dice["detail"]


def test_unmeasured_reference_block_is_listed():
    claims = compose_claims(comparison(), scores(), None)
    block = claims[claims["block"] == REFERENCE]
    assert len(block) == 5 and set(block["verdict"]) == {"not measured"}
    assert block["detail"].str.contains("report.reference_models").all()


def test_a_run_without_a_unet_measures_nothing():
    claims = compose_claims(comparison().iloc[:1], scores(), reference())
    block = claims[claims["block"] == RUN]
    assert len(block) == 5 and set(block["verdict"]) == {"not measured"}
    assert "{'meshnet': 'meshnet'}" in block["detail"].iloc[0]
    assert (claims["block"] == REFERENCE).sum() == 10


def test_every_meshnet_unet_pair_gets_rows():
    large = {
        "model": "large",
        "arch": "meshnet",
        "parameters": 820_266,
        "weight_bytes": 3_300_000,
        "checkpoint_bytes": 9_900_000,
        "subvolumes_per_second": 0.0,
        "device": CPU,
    }
    claims = compose_claims(comparison(large=large), scores(), None)
    assert row(claims, RUN, "parameters ratio, unet / large")["verdict"] == "does not hold"
    speed = row(claims, RUN, "inference speed ratio (subvolumes/s), large / unet")
    assert speed["verdict"] == "not measured" and "whole-volume" in speed["detail"]
    dice = row(claims, RUN, "foreground Dice difference, large - unet")
    assert dice["verdict"] == "not measured" and "no subject scored by both" in dice["detail"]


def test_summarise_claims_reads_the_run_tables(tmp_path):
    per_class = pd.DataFrame(
        [
            {
                "subject": "s1",
                "model": m,
                "class": c,
                "id": c,
                "name": name,
                "dice": d if c else 0.99,
                "native_dice": d,
                "predicted_mm3": 10.0,
                "true_mm3": 10.0,
            }
            for m, d in (("meshnet", 0.7), ("unet", 0.8))
            for c, name in enumerate(["Unknown", "gray-matter"])
        ]
    )
    per_class.drop(columns=["predicted_mm3", "true_mm3"]).to_csv(
        tmp_path / "dice.tsv", sep="\t", index=False
    )
    per_class.drop(columns=["dice", "native_dice"]).to_csv(
        tmp_path / "volumes.tsv", sep="\t", index=False
    )
    comparison().to_csv(tmp_path / "comparison.tsv", sep="\t", index=False)
    reference().to_csv(tmp_path / "reference.tsv", sep="\t", index=False)
    summarise_claims(
        tmp_path / "comparison.tsv",
        tmp_path / "dice.tsv",
        tmp_path / "volumes.tsv",
        [tmp_path / "reference.tsv"],
        tmp_path / "claims.tsv",
    )
    claims = pd.read_csv(tmp_path / "claims.tsv", sep="\t")
    assert list(claims.columns) == CLAIMS_COLUMNS
    assert set(claims["block"]) == {RUN, REFERENCE}
    dice = row(claims, RUN, "foreground Dice difference")
    assert dice["measured"] == pytest.approx(-0.1) and dice["verdict"] == "does not hold"
