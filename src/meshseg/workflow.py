"""This clone's Snakemake workflow, run from Python: its command line, and ``meshseg bids``.

``meshseg bids BIDS_ROOT OUTPUT_DIR participant --participant-label 01 --model CKPT`` is the
workflow's ``bids`` target on a config it builds (dataset bids on the root and participants, the
checkpoint as the one pretrained model): the same DAG and rules as ``snakemake bids``, in a
working folder of its own (results/, logs/, .snakemake/).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from meshseg.data.bids import find_t1w
from meshseg.image.io import write_text
from meshseg.nn.checkpoint import load_checkpoint

SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"
SHIPPED = SNAKEFILE.parent / "config" / "config.yaml"


def snakemake_command(workdir: str | Path, config: list[str], *args: str) -> list[str]:
    """``python -m snakemake`` on this workflow in ``workdir``: ``config`` (``--configfile``
    arguments), then ``args`` (targets and flags)."""
    snakefile = ["-s", str(SNAKEFILE), "--directory", str(workdir)]
    return [sys.executable, "-m", "snakemake", *snakefile, *config, *args]


@dataclass(frozen=True)
class BidsRun:
    """One ``meshseg bids`` run. ``labelset`` "" is the checkpoint's; ``configs`` are config
    files merged over the shipped config (before the run's own settings)."""

    root: Path
    output: Path
    checkpoint: Path
    work: Path
    participants: list[str] = field(default_factory=list)
    labelset: str = ""
    configs: list[Path] = field(default_factory=list)
    cores: int = 1


def run_config(run: BidsRun) -> dict:
    """The settings the run adds: dataset bids on its root, participants and output, and the
    checkpoint as the one pretrained model, named by its architecture (its desc label)."""
    state = load_checkpoint(run.checkpoint)
    bids = {
        "root": str(run.root.absolute()),
        "output": str(run.output.absolute()),
        "subject": list(run.participants),
        "labelset": run.labelset or state["labelset"]["name"],
    }
    model = {state["model_config"]["arch"]: str(run.checkpoint.absolute())}
    return {"dataset": "bids", "bids": bids, "pretrained": model}


def run_bids_app(run: BidsRun) -> dict[str, Path]:
    """Check the dataset and the filter, then run the workflow's ``bids`` target; where its
    outputs went. Raises ``ValueError`` (one line, nothing written) for a dataset that is not
    BIDS or a filter that matches nothing, and when the workflow fails."""
    filters = {"session": [], "acquisition": [], "run": []}
    find_t1w({"root": str(run.root), "subject": list(run.participants), **filters})
    if not SNAKEFILE.is_file():
        raise ValueError(f"{SNAKEFILE}: not found; meshseg bids needs a clone of meshseg")
    config = run_config(run)
    config_file = run.work.absolute() / "meshseg_bids.yaml"
    write_text(yaml.safe_dump(config), config_file)
    configs = [str(SHIPPED), *(str(c.absolute()) for c in run.configs), str(config_file)]
    command = snakemake_command(run.work, ["--configfile", *configs], "--cores", str(run.cores))
    if subprocess.run([*command, "bids"]).returncode != 0:
        raise ValueError(f"{run.work}: the workflow failed; see its logs in {run.work / 'logs'}")
    (model,) = config["pretrained"]
    return {
        "derivatives": run.output,
        "group volumes": run.output / f"desc-{model}_volumes.tsv",
        "working files": run.work / "results",
        "logs": run.work / "logs",
    }
