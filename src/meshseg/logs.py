"""Send a job's log records, warnings and progress bars to its Snakemake log file."""

from __future__ import annotations

import logging
import os
import sys


def log_to(path: str | os.PathLike) -> None:
    """Append logging output and stderr (tqdm, warnings, tracebacks) to ``path``."""
    stream = open(path, "a", buffering=1)  # line-buffered; closed by the interpreter at exit
    sys.stderr = stream
    logging.basicConfig(
        stream=stream,
        level=logging.INFO,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.captureWarnings(True)
