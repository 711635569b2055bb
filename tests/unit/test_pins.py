"""envs/meshseg.yaml must pin exactly what pyproject.toml pins (the workflow's packages)."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}  # the runner, not the jobs


def test_env_pins_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {re.sub(r"\[.*\]", "", p.split("==")[0]): p.split("==")[1] for p in project}
    env = yaml.safe_load((ROOT / "envs" / "meshseg.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = dict(p.split("==") for p in pip)
    assert env_pins == {k: v for k, v in pins.items() if k not in WORKFLOW_ONLY}
    assert all("==" in p for p in project)
