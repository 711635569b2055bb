"""Workflow configs of the tests, as ``--configfile`` arguments for a run in any directory.

The shipped config/config.yaml, the baby overrides of tests/config/config.yaml over it (unless
``baby`` is false), then a file of the test's own ``overrides``. Snakemake merges them in that
order, key by key. The last file also gives the demo sheet as an absolute path, since relative
paths are read from the run's directory. ``snakemake_command`` (meshseg.workflow, which
``meshseg bids`` runs too) puts them on a command line.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from snakemake.utils import update_config

from meshseg.workflow import snakemake_command

__all__ = ["SUBJECT_JOBS", "config_args", "scheduled_jobs", "snakemake_command"]

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config/config.yaml"
BABY = ROOT / "tests/config/config.yaml"
# The jobs of one test subject that a change to its T1 reruns (besides plots and tables).
SUBJECT_JOBS = {
    "conform_t1",
    "prepare_t1",
    "segment_subject",
    "native_labels",
    "evaluate_subject",
    "dice_vs_subvolumes",
}


def config_args(path: Path, overrides: dict | None = None, baby: bool = True) -> list[str]:
    """Write ``overrides`` (nested, like the config) to ``path``; the ``--configfile`` arguments."""
    sheet = ROOT / ("tests/config/subjects.tsv" if baby else "config/subjects.tsv")
    last = {"demo": {"sheet": str(sheet)}}
    update_config(last, overrides or {})
    path.write_text(yaml.safe_dump(last))
    return ["--configfile", str(SHIPPED), *([str(BABY)] if baby else []), str(path)]


def scheduled_jobs(output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists (a group job's members are indented)."""
    jobs, rule = set(), None
    for line in output.splitlines():
        if match := re.match(r"^\s*(?:local)?rule (\w+):", line):
            rule = match.group(1)
            jobs.add((rule, ""))
        elif rule and (match := re.match(r"^\s+wildcards: (.*)", line)):
            jobs.discard((rule, ""))
            jobs.add((rule, match.group(1)))
    return jobs
