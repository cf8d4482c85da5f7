"""``kdlab train --config cfg.yaml --out runs/NAME [--resume] [--set key=value ...]``.

Multi-GPU: ``torchrun --nproc_per_node=N -m kdlab.cli train ...`` (every process runs this command; only
rank 0 writes). On ``--resume`` the run's own ``config.yaml`` is the base unless ``--config`` is given;
``--set`` overrides apply on top (e.g. ``--set train.epochs=30`` to extend a finished run). One training per
``--out`` at a time: a second one is refused with one line naming the first one's pid (exit 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kdlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="experiment YAML (see kdlab/configs/)")
    parser.add_argument("--out", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest epoch-N.pt in --out")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. train.epochs=3 (repeatable)")
    parser.add_argument("--strict", action="store_true",
                        help="an unusable utterance is an error, not a counted skip (data.strict=true)")


def main(args: argparse.Namespace) -> int:
    from kdlab.config import load_config
    from kdlab.training.fit import fit

    config = args.config
    if config is None:
        if not args.resume:
            raise UserError("--config is required (except with --resume)")
        config = args.out / "config.yaml"
    cfg = load_config(config, args.overrides + (["data.strict=true"] if args.strict else []))
    result = fit(cfg, args.out, resume=args.resume)  # bad input raises a kdlab.errors.UserError (exit 2)
    if result and int(os.environ.get("RANK", "0")) == 0:
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
        print("last epoch:", " ".join(f"{k}={v}" for k, v in shown.items()))
    return 0
