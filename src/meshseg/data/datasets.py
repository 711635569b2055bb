"""Where subjects come from, as tables the workflow reads: subject and cohort per row."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from meshseg.data.osf import fetch_mindboggle
from meshseg.image.io import write_text


def fetch_mindboggle_table(api_url: str, cohorts: list[str], subjects: list[str],
                           out_dir: str | os.PathLike, table_path: str | os.PathLike,
                           **download_options) -> pd.DataFrame:
    """Fetch the chosen Mindboggle-101 subjects and write their (subject, cohort) table.

    Subjects land in ``out_dir/<Cohort>_volumes/<Subject>/`` (see
    :func:`meshseg.data.osf.fetch_mindboggle`); the cohort is read back from that folder.
    """
    chosen = fetch_mindboggle(api_url, cohorts, subjects, out_dir, **download_options)
    rows = []
    for subject in chosen:
        folder = next(Path(out_dir).glob(f"*_volumes/{subject}"))
        rows.append({"subject": subject, "cohort": folder.parent.name.removesuffix("_volumes")})
    table = pd.DataFrame(rows, columns=["subject", "cohort"])
    write_text(table.to_csv(sep="\t", index=False), table_path)
    return table
