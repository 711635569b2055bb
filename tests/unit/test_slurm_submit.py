"""The sbatch calls that snakemake-executor-plugin-slurm builds for our jobs through the users'
SLURM profile (profiles/slurm), with no cluster: snakemake runs for real with ``--profile
profiles/slurm``, and ``sbatch`` on PATH is a stand-in that records its arguments and fails, so
the run stops after the first submission. The other SLURM commands the plugin may call are
stand-ins too (an account list for sacctmgr, nothing else), so a real cluster is never asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.configs import config_args, snakemake_command

ROOT = Path(__file__).resolve().parents[2]

SBATCH = f"""#!{sys.executable}
import json, os, sys
with open(os.environ["SBATCH_RECORD"], "a") as record:
    record.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit("sbatch: error: stand-in of tests/unit/test_slurm_submit.py")
"""
OTHERS = {
    # the account list the filled-in account is checked against
    "sacctmgr": "#!/bin/sh\necho my_account\n",
    "sinfo": "#!/bin/sh\necho PARTITION\n",  # no default partition
    **{
        name: "#!/bin/sh\nexit 1\n"
        for name in ("sacct", "squeue", "scontrol", "sshare", "scancel", "srun")
    },
}


def users_profile(tmp_path: Path) -> Path:
    """profiles/slurm with slurm_account and slurm_partition filled in, as its comments ask."""
    text = (ROOT / "profiles/slurm/config.yaml").read_text()
    for line in ('# slurm_account: "my_account"', '# slurm_partition: "my_partition"'):
        assert line in text
        text = text.replace(line, line.replace("# ", "", 1))
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(text)
    return profile


def sbatch_calls(tmp_path: Path, target: str, inputs: list[str], gpu: bool) -> list[list[str]]:
    """Run snakemake on the default config, compute.gpu set to ``gpu``, towards ``target`` (its
    ``inputs`` exist as empty files, so the target's job is the first one submitted) and return
    the sbatch argument lists."""
    workdir, bin_dir, record = tmp_path / "work", tmp_path / "bin", tmp_path / "sbatch.jsonl"
    bin_dir.mkdir()
    for name, text in {"sbatch": SBATCH, **OTHERS}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for path in inputs:
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).touch()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "SBATCH_RECORD": str(record),
    }
    config = config_args(tmp_path / "config.yaml", {"compute": {"gpu": gpu}}, baby=False)
    profile = ["--profile", str(users_profile(tmp_path))]
    # end soon after the failed submission
    wait = ["--slurm-init-seconds-before-status-checks", "1"]
    command = snakemake_command(workdir, config, *profile, *wait, "--", target)
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and record.is_file(), output[
        -5000:
    ]  # the stand-in sbatch failed the run
    return [json.loads(line) for line in record.read_text().splitlines()]


def prepared(split: str) -> list[str]:
    subjects = pd.read_csv(ROOT / "config/subjects.tsv", sep="\t")
    return [
        f"results/prepared/{s}/{kind}.nii.gz"
        for s in subjects.loc[subjects["split"] == split, "subject"]
        for kind in ("t1", "labels")
    ]


def flag(call: list[str], name: str) -> str | None:
    """Value of ``--name=value`` or ``name value`` in an argument list, None if absent."""
    for i, arg in enumerate(call):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return call[i + 1]
    return None


@pytest.mark.parametrize("gpu", [True, False], ids=["gpu", "cpu"])
def test_training_job_sbatch_flags(tmp_path, gpu):
    calls = sbatch_calls(
        tmp_path,
        "results/models/meshnet/checkpoint.pt",
        prepared("train") + prepared("validation"),
        gpu,
    )
    assert len(calls) == 1, calls
    call = calls[0]
    assert call[0] == "--parsable"
    assert flag(call, "--comment") == "rule_train_model_wildcards_meshnet"
    assert flag(call, "--gpus") == ("1" if gpu else None)
    assert flag(call, "--mem") == "8000"  # MB, rules/train.smk
    assert flag(call, "-t") == "240"  # minutes, rules/train.smk
    assert flag(call, "--cpus-per-task") == "8"  # min(compute.train_threads, cores of the profile)
    assert flag(call, "--ntasks") == (
        None if gpu else "1"
    )  # the plugin leaves tasks out of GPU jobs
    assert flag(call, "-A") == "my_account"
    assert flag(call, "-p") == "my_partition"
    assert flag(call, "--job-name").startswith("meshseg_")
    assert "--executor slurm-jobstep" in flag(call, "--wrap")


def test_per_subject_group_job_sbatch_flags(tmp_path):
    """segment_subject, native_labels and evaluate_subject of one subject and model go as one
    group job."""
    subject = sorted(p.split("/")[2] for p in prepared("test"))[0]
    raw = f"resources/data/MNI152-demo_volumes/{subject}"
    calls = sbatch_calls(
        tmp_path,
        f"results/metrics/meshnet/{subject}.tsv",
        [
            f"{raw}/t1weighted.nii.gz",
            f"{raw}/labels.gwm.nii.gz",
            "results/models/meshnet/checkpoint.pt",
            f"results/prepared/{subject}/t1.nii.gz",
            f"results/prepared/{subject}/labels.nii.gz",
        ],
        gpu=True,
    )
    assert len(calls) == 1, calls
    call = calls[0]
    for rule in ("segment_subject", "native_labels", "evaluate_subject"):
        assert rule in flag(call, "--comment")
    assert flag(call, "--gpus") == "1"
    assert flag(call, "--mem") == "4000"  # the largest of its steps, which run one after the other
    assert flag(call, "-t") == str(30 + 10 + 10)  # their run times add up
    assert flag(call, "--cpus-per-task") == "8"
