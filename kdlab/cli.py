"""The ``kdlab`` command. Each sub-command lives in its own module, ``<folder>/<command>_cli.py``.

A command module exposes ``add_arguments(parser)`` and ``main(args) -> int`` (a sub-command's action in
``args.action``), and may name in ``INPUT_ERRORS`` the further exception types that its input causes. An
error caused by the user's input (``kdlab.errors.USER_ERRORS`` or those) is printed here, and only here,
as one line, ``kdlab <command> [action]: error: <message>``, with exit code 2; ``--debug`` (or
``KDLAB_DEBUG=1``) shows its traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("kdlab.data.data_cli", "synthesise embedded corpora or prepare real ones (synth|prepare)"),
    "params": ("kdlab.models.params_cli", "print a preset's parameter counts (encoder, decoder, CTC, total)"),
    "train": ("kdlab.training.train_cli",
              "train an AR or Mask-CTC model (optionally distilled) from a YAML config"),
    "average": ("kdlab.training.average_cli", "average the last N epoch checkpoints of a run"),
    "decode": ("kdlab.evaluate.decode_cli", "decode a set with one or more search methods, write results"),
    "align": ("kdlab.evaluate.align_cli", "CTC forced alignment of one utterance"),
    "bench": ("kdlab.evaluate.bench_cli", "benchmarks: decode speed ratios / RTF, training throughput"),
    "pretrained": ("kdlab.pretrained.pretrained_cli",
                   "shipped pretrained models: list, card, export, checkset, verify, ship"),
    "reproduce": ("kdlab.reproduce.reproduce_cli", "run the paper's experiment end to end (resumable)"),
    "lab": ("kdlab.lab.lab_cli", "JupyterLab on the notebooks, with this environment as the kernel"),
    "demo": ("kdlab.lab.demo_cli", "classroom mode: one notebook as an app (prose, figures, widgets; no code)"),
    "doctor": ("kdlab.env.doctor_cli",
               "check the environment: torch/torchaudio pair, compiled ops, espeak-ng, browser, the lock"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kdlab", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kdlab.errors import USER_ERRORS

    module = importlib.import_module(args._module)
    try:
        return int(module.main(args) or 0)
    except (*USER_ERRORS, *getattr(module, "INPUT_ERRORS", ())) as err:
        if args.debug or os.environ.get("KDLAB_DEBUG") == "1":
            raise
        print(f"{label(args)}: error: {one_line(err)}", file=sys.stderr)
        return 2


def label(args: argparse.Namespace) -> str:
    """``kdlab <command>``, with its action where it has one (``kdlab data prepare``)."""
    action = getattr(args, "action", None)
    return f"kdlab {args.command}" + (f" {action}" if action else "")


def one_line(err: BaseException) -> str:
    """An error's message on one line (OS errors: their text and the file name)."""
    text = str(err) or type(err).__name__
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


if __name__ == "__main__":
    sys.exit(main())
