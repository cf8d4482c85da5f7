"""``kdlab params PRESET --vocab V [--kind ar|maskctc]``: print a preset's parameter counts."""

from __future__ import annotations

import argparse

from kdlab.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", help="model preset name (L, M, S, XS, mini-teacher, mini-student)")
    parser.add_argument("--vocab", type=int, required=True, help="vocabulary size V (incl. special tokens)")
    parser.add_argument("--kind", choices=("ar", "maskctc"), default="ar", help="model kind (default: ar)")


def preset_counts(preset: str, vocab: int, kind: str) -> dict[str, int]:
    """Parameter counts of ``preset`` built on the meta device (no memory is allocated)."""
    import torch

    from kdlab.models import build_model, count_parameters, get_preset

    with torch.device("meta"):
        model = build_model(get_preset(preset), vocab, kind)
    return count_parameters(model)


def format_counts(counts: dict[str, int]) -> str:
    """One line per part: exact count and millions."""
    return "\n".join(f"{name:<8} {n:>12,d}  {n / 1e6:8.2f} M" for name, n in counts.items())


def main(args: argparse.Namespace) -> int:
    from kdlab.models import PRESETS

    if args.preset not in PRESETS:
        raise UserError(f"unknown preset {args.preset!r}; known: {', '.join(PRESETS)}")
    print(f"preset {args.preset}, kind {args.kind}, vocab {args.vocab}")
    print(format_counts(preset_counts(args.preset, args.vocab, args.kind)))
    return 0
