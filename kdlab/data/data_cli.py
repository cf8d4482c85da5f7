"""``kdlab data``: synthesize the embedded corpora, prepare real ones, check a manifest.

  kdlab data synth [--lang en|zh|all] [--engines espeak,flite,festival] [--hours H] [--dev N] [--test N]
                   [--seed S] [--out DIR]
  kdlab data prepare {librispeech,aishell,kaldi} <dir> --out <dir|file.jsonl> [--splits ...]
  kdlab data check <manifest.jsonl> [--tokenizer DIR] [--deep] [--report FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = "data/cache/corpora/mini-{lang}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    s = sub.add_parser("synth", help="synthesize mini-en (espeak-ng, flite, festival) / mini-zh (espeak-ng)")
    s.add_argument("--lang", choices=("en", "zh", "all"), default="all")
    s.add_argument("--engines", default=None,
                   help="comma-separated synthesizers of mini-en (default espeak,flite,festival; espeak is "
                   "required; flite and festival are Debian packages); mini-zh is espeak-ng only")
    s.add_argument("--hours", type=float, default=3.0, help="training audio to synthesize (default 3.0)")
    s.add_argument("--train", type=int, default=None,
                   help="number of training utterances (overrides --hours)")
    s.add_argument("--dev", type=int, default=150, help="dev utterances (default 150)")
    s.add_argument("--test", type=int, default=150, help="test utterances (default 150)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--out", default=None, help=f"output folder (default {DEFAULT_OUT}; with --lang all, "
                   "a folder in which mini-en and mini-zh are made)")
    p = sub.add_parser("prepare", help="write manifests for LibriSpeech, AISHELL-1 or a Kaldi data dir")
    p.add_argument("corpus", choices=("librispeech", "aishell", "kaldi"))
    p.add_argument("source", help="corpus root (LibriSpeech, data_aishell or their parent) or Kaldi data dir")
    p.add_argument("--out", required=True, help="output folder (kaldi: a folder or a .jsonl file)")
    p.add_argument("--splits", nargs="*", default=None, help="LibriSpeech splits (default: all found)")
    c = sub.add_parser("check", help="validate a manifest: bad audio, empty/OOV transcripts, too short")
    c.add_argument("manifest")
    c.add_argument("--tokenizer", default=None, help="tokenizer folder (enables the OOV and length checks)")
    c.add_argument("--subsampling", type=int, default=4)
    c.add_argument("--deep", action="store_true", help="decode every file, not only its header")
    c.add_argument("--report", default=None, help="where to save the JSON report")


def _synth(args: argparse.Namespace) -> int:
    from kdlab.data.synth import synthesize_corpus
    from kdlab.data.synth.engines import parse_engines

    langs = ("en", "zh") if args.lang == "all" else (args.lang,)
    chosen = None if args.engines is None else parse_engines(args.engines)
    for lang in langs:
        engines = chosen if lang == "en" or args.lang == "zh" else None
        if args.out is None:
            out = Path(DEFAULT_OUT.format(lang=lang))
        else:
            out = Path(args.out) / f"mini-{lang}" if args.lang == "all" else Path(args.out)
        synthesize_corpus(out, lang, seed=args.seed, train_hours=args.hours, n_dev=args.dev, n_test=args.test,
                          n_train=args.train, workers=args.workers, engines=engines)
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from kdlab.data import prepare

    if args.corpus == "librispeech":
        report = prepare.prepare_librispeech(args.source, args.out, args.splits)
    elif args.corpus == "aishell":
        report = prepare.prepare_aishell(args.source, args.out)
    else:
        out = Path(args.out)
        if out.suffix != ".jsonl":
            out = out / f"{Path(args.source).resolve().name}.jsonl"
        report = prepare.prepare_kaldi(args.source, out)
    print(report.table())
    return 0


def _check(args: argparse.Namespace) -> int:
    from kdlab.data.manifest import read_manifest, validate

    encode = unk = None
    if args.tokenizer:
        from kdlab.data.tokenizer import load_tokenizer
        from kdlab.tokens import UNK

        encode, unk = load_tokenizer(args.tokenizer).encode, UNK
    _, report = validate(read_manifest(args.manifest), encode, unk, args.subsampling, deep=args.deep)
    print(report.table())
    report.save(args.report or Path(args.manifest).with_suffix(".skips.json"))
    return 0 if not report.skips else 1


def main(args: argparse.Namespace) -> int:
    handlers = {"synth": _synth, "prepare": _prepare, "check": _check}
    return handlers[args.action](args)
