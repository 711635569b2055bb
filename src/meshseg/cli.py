"""Command line: ``meshseg conform IN OUT [--labels]``, ``meshseg dice PRED TRUTH``,
``meshseg segment T1 [T1 ...] --model CKPT -o OUTDIR``,
``meshseg export CKPT [--format onnx|tfjs] -o MODEL.onnx|DIR`` and
``meshseg import brainchop MODEL_DIR -o CKPT [--labels FILE]``;
``meshseg bids BIDS_ROOT OUTPUT_DIR participant --model CKPT`` runs the workflow as a BIDS app."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter
from pathlib import Path

from meshseg.image.conform import BACKENDS, conform_file
from meshseg.labels import load_labelset
from meshseg.nn import checkpoint
from meshseg.nn.export import export_onnx
from meshseg.nn.inference import MODES, InferenceConfig
from meshseg.nn.runtime import DEVICES, PRECISIONS, Compute
from meshseg.nn.tfjs import export_tfjs, import_brainchop
from meshseg.nn.vote import RULES
from meshseg.pipeline import check_t1, segment_t1, subject_name
from meshseg.report.evaluation import structure_table
from meshseg.workflow import BidsRun, run_bids_app


def _conform(args: argparse.Namespace) -> None:
    backend = conform_file(args.input, args.output, labels=args.labels, backend=args.backend)
    logging.info("conformed %s -> %s (%s backend)", args.input, args.output, backend)


def _dice(args: argparse.Namespace) -> None:
    labelset = load_labelset(args.labelset) if args.labelset else None
    table = structure_table(args.prediction, args.truth, labelset)
    sys.stdout.write(table.to_csv(sep="\t", index=False, float_format="%.4f"))


def _segment(args: argparse.Namespace) -> None:
    for t1 in args.t1:  # every input is checked before any is segmented
        check_t1(t1)
    repeated = sorted(name for name, n in Counter(map(subject_name, args.t1)).items() if n > 1)
    if repeated:
        raise ValueError(f"inputs share the subject names {repeated}: their outputs would collide")
    config = InferenceConfig(
        mode=args.mode,
        vote=args.vote,
        n_subvolumes=args.subvolumes,
        device=args.device,
        precision=args.precision,
        threads=args.threads,
    )
    loaded, compute = checkpoint.load(args.model), Compute.from_config(config)
    for t1 in args.t1:
        result = segment_t1(t1, loaded, args.output, config, compute, backend=args.backend)
        logging.info("%s -> %s", t1, result["files"]["labels_native"])


def _export(args: argparse.Namespace) -> None:
    write = export_tfjs if args.format == "tfjs" else export_onnx
    out = write(checkpoint.load(args.checkpoint), args.output)
    logging.info("exported %s -> %s", args.checkpoint, out)


def _bids(args: argparse.Namespace) -> None:
    run = BidsRun(
        root=Path(args.bids_dir),
        output=Path(args.output_dir),
        checkpoint=Path(args.model),
        work=Path(args.work_dir),
        participants=args.participant_label,
        labelset=args.labelset,
        configs=[Path(c) for c in args.configfile],
        cores=args.cores,
    )
    for what, where in run_bids_app(run).items():
        logging.info("%s: %s", what, where)


def _import(args: argparse.Namespace) -> None:
    out = import_brainchop(args.folder, args.output, args.labels)
    logging.info("imported %s -> %s", args.folder, out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    conform = commands.add_parser(
        "conform", help="FreeSurfer `mri_convert -c` (1 mm, 256^3, LIA, uchar)"
    )
    conform.add_argument("input")
    conform.add_argument("output")
    conform.add_argument(
        "--labels",
        action="store_true",
        help="a label map: nearest neighbour, values kept, no intensity scaling",
    )
    conform.add_argument("--backend", default="auto", choices=BACKENDS)
    conform.set_defaults(run=_conform)

    dice = commands.add_parser(
        "dice", help="Dice and volumes per label of PRED against TRUTH (TSV)"
    )
    dice.add_argument("prediction")
    dice.add_argument("truth")
    dice.add_argument("--labelset", help="label-set name or TSV; default: every id present")
    dice.set_defaults(run=_dice)

    segment = commands.add_parser(
        "segment",
        help="segment T1 images with a trained checkpoint: "
        "labels on the conformed and the T1's own grid, volumes (TSV)",
    )
    segment.add_argument("t1", nargs="+", help="T1-weighted NIfTI images (.nii or .nii.gz)")
    segment.add_argument(
        "--model", required=True, help="checkpoint (results/models/<model>/checkpoint.pt)"
    )
    segment.add_argument(
        "-o", "--output", required=True, help="folder; each T1 gets OUTPUT/<file name>/"
    )
    segment.add_argument(
        "--mode",
        default="auto",
        choices=MODES,
        help="vote: subvolumes + majority vote; whole: one pass (MeshNet only); auto "
        "(default): the checkpoint's own (whole for imported brainchop models, else vote)",
    )
    segment.add_argument(
        "--vote",
        default=InferenceConfig.vote,
        choices=RULES,
        help="for --mode vote: hard (ties by summed probability), soft (summed "
        "probabilities) or hard-lowest (the reference: ties to the lowest id); "
        "default %(default)s",
    )
    segment.add_argument(
        "--subvolumes",
        type=int,
        default=InferenceConfig.n_subvolumes,
        help="subvolumes for --mode vote (default %(default)s)",
    )
    segment.add_argument("--device", default="auto", choices=DEVICES)
    segment.add_argument("--precision", default="auto", choices=PRECISIONS)
    segment.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="CPU threads (default: all available, %(default)s)",
    )
    segment.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="conform backend (see `meshseg conform`)",
    )
    segment.set_defaults(run=_segment)

    export = commands.add_parser(
        "export", help="write a checkpoint's network as ONNX or as a brainchop TF.js folder"
    )
    export.add_argument("checkpoint")
    export.add_argument(
        "--format",
        default="onnx",
        choices=("onnx", "tfjs"),
        help="onnx: one fp32 file; tfjs: model.json + weights + colormap.json + labels.json "
        "(MeshNet only, BatchNorm folded), as brainchop's web app loads them",
    )
    export.add_argument("-o", "--output", required=True, help="ONNX file, or folder for tfjs")
    export.set_defaults(run=_export)

    bids = commands.add_parser(
        "bids",
        help="segment a BIDS dataset into a BIDS-Derivatives dataset (a BIDS app: the "
        "workflow's bids target)",
    )
    bids.add_argument("bids_dir", help="the BIDS dataset")
    bids.add_argument("output_dir", help="the BIDS-Derivatives dataset to write")
    bids.add_argument(
        "analysis_level", choices=["participant"], help="participant (writes the group table too)"
    )
    bids.add_argument(
        "--participant-label",
        "--participant_label",
        nargs="+",
        default=[],
        help='subjects ("sub-" optional); default all',
    )
    bids.add_argument("--model", required=True, help="checkpoint; desc-<its architecture>")
    bids.add_argument("--labelset", default="", help="default: the checkpoint's label set")
    bids.add_argument(
        "-w",
        "--work-dir",
        default="work",
        help="the workflow's working folder (default %(default)s)",
    )
    bids.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="workflow config files merged over config/config.yaml (e.g. inference settings)",
    )
    bids.add_argument(
        "--cores",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="CPU cores for the workflow (default: all available, %(default)s)",
    )
    bids.set_defaults(run=_bids)

    import_ = commands.add_parser(
        "import", help="read a brainchop TF.js layers model folder into a meshseg checkpoint"
    )
    import_.add_argument("format", choices=("brainchop",))
    import_.add_argument("folder", help="folder with model.json and its weight shards")
    import_.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    import_.add_argument(
        "--labels",
        help="class names and colours: brainchop colormap.json or labels.json, or a label-set "
        "TSV; default: the folder's own colormap*.json / labels.json, else class-N",
    )
    import_.set_defaults(run=_import)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; errors become one line on stderr and exit status 1."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args.run(args)
    except (ValueError, OSError) as err:
        print(f"meshseg {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
