"""meshseg: MeshNet vs U-Net brain MRI segmentation as a reproducible Snakemake workflow.

The package is laid out by stage, like the workflow's ``rules/``. A module may import from
its own layer and from lower layers, never from a higher one (tests/unit/test_layering.py
reads every module's imports and checks this):

0. base: ``meshseg`` itself (``__version__``), ``labels`` (label sets, ``labelsets/*.tsv``),
   ``metrics`` (Dice and volumes, pure numpy: training's validation and the report share
   them) and ``logs`` (a job's log file);
1. ``image/``: NIfTI and atomic file I/O, conform, native grid, intensity, prepare;
2. ``data/``: demo, OSF, folder, BIDS, subject sheets, splits, datasets;
3. ``nn/``: models, training crops, training, subvolumes, vote, inference, fusion, runtime,
   checkpoint, export, tfjs;
4. ``report/``: evaluation, tables, figures, claims, model cards, experiments, BIDS derivatives;
5. ``pipeline``: a new T1 end to end, through every stage (``meshseg segment``); ``workflow``:
   the Snakemake workflow run from Python (``meshseg bids``);
6. ``cli``: the ``meshseg`` command.

Subpackages re-export nothing: import from the module (``from meshseg.nn.vote import RULES``).
"""

import os

__version__ = "0.1.0"

# OpenMP threads that wait for work sleep instead of spinning (unless the user chose otherwise).
# On a machine shared with other work, spinning threads burn the cores the working ones need:
# a training step there took 3.5x longer with spinning (README: Speed). libgomp reads this
# once, when torch loads it, so meshseg must be imported before torch for it to apply.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
