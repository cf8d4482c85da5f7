"""``kdlab average RUN [--n 5]``: average the last N epoch checkpoints of a run into ``avg-N.pt``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="run folder holding epoch-N.pt files")
    parser.add_argument("--n", type=int, default=5, help="how many of the newest checkpoints (paper: 5)")


def main(args: argparse.Namespace) -> int:
    from kdlab.checkpoint import average_run, epoch_checkpoints

    out = average_run(args.run, args.n)
    used = [p.name for p in epoch_checkpoints(args.run)[-args.n:]]
    print(f"{out}: mean of {', '.join(used)}")
    return 0
