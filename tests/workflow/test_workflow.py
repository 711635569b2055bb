"""The whole DAG on the baby config (tests/config): tables, lint, and what a rerun schedules."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from meshseg.nn.models import build_model, count_parameters, model_config
from meshseg.report.tables import COMPARISON_COLUMNS
from tests.configs import SUBJECT_JOBS, config_args, scheduled_jobs, snakemake_command

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.workflow


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run snakemake on the baby config in ``workdir``."""
    command = snakemake_command(
        str(workdir), config_args(workdir / "overrides.yaml"), "--cores", "2", *args
    )
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def snakemake(workdir: Path, *args: str) -> str:
    """Run snakemake, check it succeeded, return its combined output."""
    result = run_snakemake(workdir, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    return output


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    snakemake(workdir, "all")
    return workdir


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tables_are_complete(finished_run):
    results = finished_run / "results"
    comparison = pd.read_csv(results / "comparison.tsv", sep="\t")
    assert list(comparison.columns) == COMPARISON_COLUMNS
    assert sorted(comparison["model"]) == ["meshnet", "unet"]
    assert comparison.notna().all().all(), comparison.T
    expected = {
        m: count_parameters(build_model(model_config(m, 3, width=2))) for m in ("meshnet", "unet")
    }
    assert dict(zip(comparison["model"], comparison["parameters"])) == expected
    dice = pd.read_csv(results / "dice.tsv", sep="\t")
    assert len(dice) == 2 * 2 * 3  # subjects x models x classes
    assert dice["dice"].between(0, 1).all()
    assert set(dice["name"]) == {"Unknown", "gray-matter", "white-matter"}
    volumes = pd.read_csv(results / "volumes.tsv", sep="\t")
    assert volumes.groupby(["subject", "model"])["true_mm3"].sum().to_numpy() == pytest.approx(
        256**3, rel=1e-5
    )
    for model in ("meshnet", "unet"):
        assert (results / "models" / model / "training_curve.tsv").is_file()
        assert (results / "predictions" / model / "MNI152-demo-3" / "labels_lut.txt").is_file()


def test_nothing_to_do_on_a_second_run(finished_run):
    assert scheduled_jobs(snakemake(finished_run, "-n", "all")) == set()


def report_results(html: str) -> dict[str, bytes]:
    """The files a Snakemake 9 report embeds (``var results``, base64 data URIs), by path."""
    match = re.search(r"var results = (\{.*?\});\s*</script>", html, re.S)
    assert match, "no embedded results in the report"
    return {
        path: base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        for path, entry in json.loads(match.group(1)).items()
    }


def test_report_holds_the_tables_and_figures(finished_run):
    snakemake(finished_run, "--report", "report.html", "all")
    html = (finished_run / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") and "</html>" in html[-1000:]
    figures = sorted(
        f"results/figures/{p.name}" for p in (finished_run / "results/figures").glob("*.png")
    )
    assert {
        "dice_per_class",
        "overlay_MNI152-demo-3",
        "overlay_MNI152-demo-4",
        "training_curves",
        "volume_agreement",
    } <= {Path(f).stem for f in figures}
    embedded = report_results(html)
    tables = [
        f"results/{name}.tsv"
        for name in ("comparison", "claims", "reference_speed", "dice", "volumes")
    ]
    assert sorted(embedded) == sorted(tables + figures)
    for path in tables + figures:
        assert embedded[path] == (finished_run / path).read_bytes(), path
    claims = pd.read_csv(finished_run / "results/claims.tsv", sep="\t")
    assert set(claims["block"]) == {"this run", "reference-size models"}
    assert set(claims["verdict"]) <= {"holds", "does not hold", "not measured"}


def test_touching_one_test_subject_reruns_only_its_jobs(finished_run):
    t1 = finished_run / "resources/data/MNI152-demo_volumes/MNI152-demo-4/t1weighted.nii.gz"
    assert t1.stat().st_size > 1_000_000  # smaller files would be checksummed, not timed
    later = t1.stat().st_mtime + 100
    os.utime(t1, (later, later))
    jobs = scheduled_jobs(snakemake(finished_run, "-n", "all"))
    rules = {rule for rule, _ in jobs}
    summaries = {
        "summarise_results",
        "summarise_experiments",
        "plot_dice",
        "plot_volumes",
        "plot_dice_vs_subvolumes",
        "summarise_claims",
        "write_model_card",
        "all",
    }
    assert rules == {
        *SUBJECT_JOBS,
        "plot_overlay",
        *summaries,
    }
    per_subject = [w for rule, w in jobs if rule not in summaries]
    assert per_subject and all("MNI152-demo-4" in w for w in per_subject)
    assert len([1 for rule, _ in jobs if rule == "segment_subject"]) == 2  # one per model


def test_corrupt_input_fails_naming_the_file_and_leaves_no_output(finished_run):
    t1 = finished_run / "resources/data/MNI152-demo_volumes/MNI152-demo-4/t1weighted.nii.gz"
    t1.write_bytes(t1.read_bytes()[: t1.stat().st_size // 2])  # a truncated download
    target = "results/conformed/MNI152-demo-4/t1.nii.gz"
    result = run_snakemake(finished_run, target)
    assert result.returncode != 0
    log = (finished_run / "logs/conformed/MNI152-demo-4/t1.log").read_text()
    assert f"{t1.relative_to(finished_run)}: not a readable NIfTI/MGZ image" in log
    assert not (finished_run / target).exists()
    assert not list((finished_run / "results/conformed/MNI152-demo-4").glob(".t1*"))
