import json
from importlib import resources

import pytest

from meshseg.data.datasets import DATA_LICENCES
from meshseg.nn.checkpoint import load
from meshseg.nn.tfjs import import_brainchop
from meshseg.report.modelcard import CardFiles, CardSources, write_model_card
from tests.conftest import tiny_checkpoint
from tests.unit.test_tfjs import random_model

METRICS = """subject\tmodel\tclass\tid\tname\tdice\tpredicted_mm3\ttrue_mm3
{subject}\tmeshnet\t0\t0\tUnknown\t{d0}\t100\t100
{subject}\tmeshnet\t1\t1\tgray-matter\t{d1}\t50\t60
{subject}\tmeshnet\t2\t2\twhite-matter\t{d2}\t40\t45
{subject}\tunet\t1\t1\tgray-matter\t0.1\t50\t60
"""
COMPARISON = """model\tarch\tsubjects\tforeground_dice_mean\tforeground_dice_sd\t\
macro_dice_mean\tparameters\tweight_bytes\tcheckpoint_bytes\tseconds_per_subject\tsubvolumes_per_second\tdevice
meshnet\tmeshnet\t2\t0.75\t0.05\t0.8\t72516\t290000\t900000\t12.5\t27.4\tcpu (2 threads), fp32
unet\tunet\t2\t0.1\tnan\t0.1\t1000\t4000\t9000\t3.0\t100\tcpu (2 threads), fp32
"""
SHEET = (
    "subject\tcohort\tsplit\ns1\tc\ttrain\ns2\tc\ttrain\nv1\tc\tvalidation\n"
    "t1\tc\ttest\nt2\tc\ttest\n"
)


@pytest.fixture
def card_inputs(tmp_path):
    (tmp_path / "t1.tsv").write_text(METRICS.format(subject="t1", d0=0.99, d1=0.7, d2=0.8))
    (tmp_path / "t2.tsv").write_text(METRICS.format(subject="t2", d0=0.97, d1=0.6, d2=0.9))
    (tmp_path / "comparison.tsv").write_text(COMPARISON)
    (tmp_path / "subjects.tsv").write_text(SHEET)
    checkpoint = load(tiny_checkpoint(tmp_path / "c.pt"))
    return (
        checkpoint,
        [tmp_path / "t1.tsv", tmp_path / "t2.tsv"],
        tmp_path / "comparison.tsv",
        tmp_path / "subjects.tsv",
    )


def demo_card(model, card_inputs, tmp_path) -> dict:
    """The card of ``model`` (a checkpoint or loaded model) as "meshnet" on the demo inputs."""
    _, metrics, comparison, sheet = card_inputs
    return write_model_card(
        model,
        "meshnet",
        CardSources(metrics, comparison, sheet),
        "demo",
        DATA_LICENCES["demo"],
        CardFiles(tmp_path / "card.md", tmp_path / "card.json"),
    )


def test_card_fields_are_computed(tmp_path, card_inputs):
    card = demo_card(card_inputs[0], card_inputs, tmp_path)
    assert json.loads((tmp_path / "card.json").read_text()) == card
    assert card["model"]["arch"] == "meshnet" and card["model"]["variant"] == "small"
    assert card["model"]["parameters"] == 72_516
    assert card["labels"]["labelset"] == "demo_gwm"
    assert [c["name"] for c in card["labels"]["classes"]] == [
        "Unknown",
        "gray-matter",
        "white-matter",
    ]
    data = card["training_data"]
    assert data["subjects"] == {"train": ["s1", "s2"], "validation": ["v1"], "test": ["t1", "t2"]}
    assert data["counts"] == {"train": 2, "validation": 1, "test": 2}
    assert "MNI ICBM152" in data["licence"]
    assert card["training"]["config"] == {"patch": 38}
    ev = card["evaluation"]
    assert ev["subjects"] == 2 and ev["subject_ids"] == ["t1", "t2"]
    gm = ev["classes"][1]
    assert gm["name"] == "gray-matter" and gm["dice_mean"] == pytest.approx(0.65)
    assert gm["dice_sd"] == pytest.approx(0.0707107, rel=1e-5)  # sample sd of 0.7 and 0.6
    assert ev["classes"][2]["dice_mean"] == pytest.approx(0.85)
    assert ev["foreground_dice_mean"] == 0.75 and ev["seconds_per_subject"] == 12.5
    assert set(card["software"]) == {"python", "torch", "meshseg", "numpy", "nibabel"}
    text = (tmp_path / "card.md").read_text()
    for name in ("gray-matter", "white-matter", "Unknown", "0.6500", "s1, s2"):
        assert name in text


def test_one_subject_has_no_sd_and_json_stays_valid(tmp_path, card_inputs):
    checkpoint, metrics, comparison, sheet = card_inputs
    card = write_model_card(
        checkpoint,
        "unet",
        CardSources(metrics[:1], comparison, sheet),
        "mindboggle101",
        DATA_LICENCES["mindboggle101"],
        CardFiles(tmp_path / "card.md", tmp_path / "card.json"),
    )
    assert card["evaluation"]["classes"][0]["dice_sd"] is None
    assert card["evaluation"]["foreground_dice_sd"] is None
    assert "CC BY-NC-SA 3.0" in (tmp_path / "card.md").read_text()


def test_missing_model_row_names_the_comparison(tmp_path, card_inputs):
    checkpoint, metrics, comparison, sheet = card_inputs
    (tmp_path / "t3.tsv").write_text(
        METRICS.format(subject="t3", d0=1, d1=1, d2=1).replace("meshnet", "other")
    )
    with pytest.raises(ValueError, match=r"comparison\.tsv: no row for model 'other'"):
        write_model_card(
            checkpoint,
            "other",
            CardSources([tmp_path / "t3.tsv"], comparison, sheet),
            "demo",
            "x",
            CardFiles(tmp_path / "card.md", tmp_path / "card.json"),
        )
    assert not (tmp_path / "card.json").exists()


def test_an_imported_checkpoint_gets_a_card_that_says_so(tmp_path, card_inputs):
    random_model(tmp_path / "tfjs")
    labels = resources.files("meshseg") / "labelsets" / "demo_gwm.tsv"
    imported = load(import_brainchop(tmp_path / "tfjs", tmp_path / "imported.pt", labels))
    card = demo_card(imported, card_inputs, tmp_path)
    assert card["model"]["source"]["format"] == "tfjs-layers"
    assert card["model"]["variant"].startswith("custom ([4, 4, 5] channels")
    assert card["model"]["preprocess"]["normalisation"]["name"] == "qnormalize"
    text = (tmp_path / "card.md").read_text()
    assert "trained elsewhere, not by meshseg" in text
    assert "Input normalisation qnormalize, whole inference, largest connected" in text
