"""Kill a child Python with SIGKILL at a chosen point: the `kill -9` tests' harness."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def start_and_kill(code: str, marker: Path, tmp_path: Path) -> None:
    """Run ``code`` in a fresh Python; SIGKILL it once it creates ``marker``."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    try:
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(
                    f"child exited ({proc.returncode}) before the kill point:\n"
                    f"{proc.stdout.read().decode()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail("child never reached the kill point")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()  # no-op when already dead
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


CHILD_PAUSE = """
    import pathlib, sys, time
    MARKER = pathlib.Path({marker!r})

    def pause():
        MARKER.touch()
        time.sleep(600)
"""

# nib.save standing in for a write that is cut short: half the bytes are on disk when killed
CHILD_HALF_WRITE = """
    import meshseg.image.io
    _save = meshseg.image.io.nib.save

    def half_save(img, path, *args, **kwargs):
        _save(img, path, *args, **kwargs)
        data = pathlib.Path(path).read_bytes()
        pathlib.Path(path).write_bytes(data[:len(data) // 2])
        pause()

    meshseg.image.io.nib.save = half_save
"""
