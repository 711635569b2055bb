"""Command line: ``meshseg conform IN OUT [--labels]`` and ``meshseg dice PRED TRUTH``."""

from __future__ import annotations

import argparse
import logging
import sys

from meshseg.conform import conform_file
from meshseg.evaluation import structure_table
from meshseg.labels import load_labelset


def _conform(args: argparse.Namespace) -> None:
    backend = conform_file(args.input, args.output, labels=args.labels, backend=args.backend)
    logging.info("conformed %s -> %s (%s backend)", args.input, args.output, backend)


def _dice(args: argparse.Namespace) -> None:
    labelset = load_labelset(args.labelset) if args.labelset else None
    table = structure_table(args.prediction, args.truth, labelset)
    sys.stdout.write(table.to_csv(sep="\t", index=False, float_format="%.4f"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meshseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    conform = commands.add_parser("conform", help="FreeSurfer `mri_convert -c` (1 mm, 256^3, LIA, uchar)")
    conform.add_argument("input")
    conform.add_argument("output")
    conform.add_argument("--labels", action="store_true",
                         help="a label map: nearest neighbour, values kept, no intensity scaling")
    conform.add_argument("--backend", default="auto", choices=["auto", "python", "freesurfer"])
    conform.set_defaults(run=_conform)

    dice = commands.add_parser("dice", help="Dice and volumes per label of PRED against TRUTH (TSV)")
    dice.add_argument("prediction")
    dice.add_argument("truth")
    dice.add_argument("--labelset", help="label-set name or TSV; default: every id present")
    dice.set_defaults(run=_dice)
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
