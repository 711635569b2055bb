"""The baby config (tests/config) end to end on a real SLURM cluster, then a one-subject rerun.

Runs on the one-node cluster that `.ci/slurm.sh up` starts (`.ci/slurm.sh test` runs this file),
through the users' profile with the test cluster's layer over it (tests/slurm/profile). Skipped
when no such cluster answers, unless MESHSEG_REQUIRE_SLURM=1 (set by `.ci/slurm.sh test`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.configs import SUBJECT_JOBS, config_args, snakemake_command

ROOT = Path(__file__).resolve().parents[2]
SLURM_CONF = os.environ.get("SLURM_CONF") or str(
    Path(os.environ.get("MESHSEG_SLURM_DIR", "/tmp/meshseg-slurm")) / "slurm.conf"
)
ENV = {**os.environ, "SLURM_CONF": SLURM_CONF}
RUN_LIMIT_S = 1200  # per snakemake run; the first takes about 3 minutes on 2 cores, the rerun 1
T1 = "resources/data/MNI152-demo_volumes/MNI152-demo-4/t1weighted.nii.gz"
pytestmark = pytest.mark.slurm


def slurm(*args: str) -> str:
    return subprocess.run(
        args, capture_output=True, text=True, env=ENV, timeout=60, check=True
    ).stdout


def cluster_problem() -> str | None:
    """Why the test cluster cannot be used, or None."""
    if shutil.which("sbatch") is None:
        return "sbatch is not on PATH (start the test cluster with .ci/slurm.sh up)"
    if not Path(SLURM_CONF).is_file():
        return f"no {SLURM_CONF} (start the test cluster with .ci/slurm.sh up)"
    try:
        states = slurm("sinfo", "-h", "-N", "-o", "%T").split()
    except (subprocess.SubprocessError, OSError) as error:
        return (
            f"the SLURM cluster of {SLURM_CONF} does not answer "
            f"(.ci/slurm.sh up starts it): {error}"
        )
    if not any(s in ("idle", "mixed", "allocated") for s in states):
        return f"no usable SLURM node (states: {states})"
    return None


@pytest.fixture(scope="module")
def cluster():
    if problem := cluster_problem():
        if os.environ.get("MESHSEG_REQUIRE_SLURM") == "1":
            pytest.fail(problem)
        pytest.skip(problem)


def run_on_slurm(workdir: Path) -> str:
    """snakemake all on the baby config through the SLURM profiles; its output (checked)."""
    profiles = [
        "--profile",
        str(ROOT / "profiles/slurm"),
        "--profile",
        str(ROOT / "tests/slurm/profile"),
    ]
    config = config_args(workdir / "overrides.yaml")
    command = ["timeout", "-k", "30", str(RUN_LIMIT_S)]
    command += snakemake_command(workdir, config, *profiles, "--", "all")
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=ENV)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        if run_id := re.search(r"SLURM run ID: (\S+)", output):  # leave no jobs behind
            subprocess.run(["scancel", "--name", run_id.group(1)], env=ENV)
        pytest.fail(
            f"snakemake exited {result.returncode}\n{output[-8000:]}\n{slurmctld_log()[-3000:]}"
        )
    return output


def slurmctld_log() -> str:
    config = slurm("scontrol", "show", "config")
    path = re.search(r"^SlurmctldLogFile\s*=\s*(\S+)", config, re.M).group(1)
    return Path(path).read_text(errors="replace")


def submissions(output: str) -> dict[str, list[tuple[str, str]]]:
    """SLURM job id -> the (rule, wildcards) of the Snakemake jobs it ran.

    The ids come from the plugin's "Job <id> has been submitted with SLURM jobid <n> (log:
    <file>)" lines in snakemake's output; the jobs from that SLURM job's own log (kept by the
    test profile), whose first snakemake command line names them: --target-jobs
    rule:wildcards ... (one for a job, all members for a group job).
    """
    submitted = {}
    for job_id, log in re.findall(
        r"has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.?$", output, re.M
    ):
        targets = re.search(r"--target-jobs (.+?) --allowed-rules", Path(log).read_text())
        assert targets, f"no --target-jobs in the SLURM log {log}"
        submitted[job_id] = sorted(tuple(t.split(":", 1)) for t in shlex.split(targets.group(1)))
    return submitted


@pytest.fixture(scope="module")
def first_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    return workdir, run_on_slurm(workdir)


def test_workflow_runs_through_slurm(first_run):
    workdir, output = first_run
    submitted = submissions(output)
    assert submitted, output[-5000:]
    rules = {rule for members in submitted.values() for rule, _ in members}
    assert rules == {
        "make_demo_subject",
        "conform_t1",
        "conform_labels",
        "prepare_t1",
        "prepare_labels",
        "train_model",
        "segment_subject",
        "native_labels",
        "evaluate_subject",
        "dice_vs_subvolumes",
        "summarise_results",
        "measure_reference_speed",
    }, submitted
    # 4 subjects x 5 preprocessing jobs, 2 models, 2 models x 2 test subjects x 4 per_subject-group
    # jobs, the tables and the speed measurement (figures and cards are local rules)
    assert sum(len(members) for members in submitted.values()) == 4 * 5 + 2 + 2 * 2 * 4 + 1 + 1
    # group-components of the users' profile: the 20 preprocessing jobs in one SLURM job; the
    # 8 per_subject-group components (segment + native + evaluate, and the experiment, per subject
    # and model) 5 to a SLURM job as they become ready (each model's after its training)
    kinds = [{rule for rule, _ in members} for members in submitted.values()]
    assert sum("make_demo_subject" in k for k in kinds) == 1, submitted
    per_subject_jobs = [k for k in kinds if k & {"segment_subject", "dice_vs_subvolumes"}]
    assert all(
        k <= {"segment_subject", "native_labels", "evaluate_subject", "dice_vs_subvolumes"}
        for k in per_subject_jobs
    ), submitted
    assert 2 <= len(per_subject_jobs) <= 4, submitted
    log = slurmctld_log()
    for job_id in submitted:  # the controller submitted, ran and finished every one of them
        assert re.search(rf"_slurm_rpc_submit_batch_job: JobId={job_id}\b", log), job_id
        assert re.search(rf"_job_complete: JobId={job_id} WEXITSTATUS 0", log), job_id
    for name in ("comparison.tsv", "dice.tsv", "volumes.tsv"):
        assert (workdir / "results" / name).stat().st_size > 0


def test_touching_one_subject_resubmits_only_its_jobs(first_run):
    workdir, _ = first_run
    t1 = workdir / T1
    assert t1.stat().st_size > 1_000_000  # smaller files would be checksummed, not timed
    later = t1.stat().st_mtime + 100
    os.utime(t1, (later, later))
    submitted = submissions(run_on_slurm(workdir))
    members = [job for jobs in submitted.values() for job in jobs]
    assert {rule for rule, _ in members} == {
        *SUBJECT_JOBS,
        "summarise_results",
    }, submitted
    per_subject = [w for rule, w in members if rule != "summarise_results"]
    assert per_subject and all("subject=MNI152-demo-4" in w for w in per_subject), submitted
    assert len([1 for rule, _ in members if rule == "segment_subject"]) == 2  # one per model
    assert len(submitted) == 3, submitted  # preprocessing, per_subject (both models), tables
    for (
        job_id,
        jobs,
    ) in submitted.items():  # the controller's record of each job, still held (MinJobAge)
        record = slurm("scontrol", "show", "job", job_id)
        assert "JobState=COMPLETED" in record, record
        comment = re.search(r"Comment=(\S+)", record).group(1)
        assert all(rule in comment for rule, _ in jobs), (comment, jobs)
