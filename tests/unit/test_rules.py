"""The workflow's rules/: one table of paths, and a parse that stays light (no torch)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.configs import config_args

ROOT = Path(__file__).resolve().parents[2]
RESULTS = re.compile(r"""["'](results/[^"']*)["']""")

# A dry run in a fresh interpreter that reports, as it exits, whether torch was imported.
PARSE = """
import atexit, runpy, sys
atexit.register(lambda: print("torch imported:", "torch" in sys.modules))
sys.argv = ["snakemake", *sys.argv[1:]]
runpy.run_module("snakemake", run_name="__main__", alter_sys=True)
"""


def test_every_results_path_is_written_once_in_the_table_of_common_smk():
    found = {
        smk.name: RESULTS.findall(smk.read_text()) for smk in sorted((ROOT / "rules").glob("*.smk"))
    }
    assert {name: paths for name, paths in found.items() if paths and name != "common.smk"} == {}
    table = found["common.smk"]
    assert len(table) == len(set(table)), sorted(p for p in table if table.count(p) > 1)


def test_a_dry_run_of_the_demo_does_not_import_torch(tmp_path):
    command = [
        sys.executable,
        "-c",
        PARSE,
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(tmp_path / "run"),
        *config_args(tmp_path / "config.yaml", baby=False),
        "--cores",
        "1",
        "-n",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "This was a dry-run" in output, output[-3000:]
    assert "torch imported: False" in output, output[-3000:]
