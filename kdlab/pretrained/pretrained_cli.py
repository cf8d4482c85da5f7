"""``kdlab pretrained list|card|export|checkset|verify|ship|seal``: the shipped pretrained models (see
:mod:`kdlab.pretrained.store` and :mod:`kdlab.pretrained.check`).

Examples::

    kdlab pretrained list
    kdlab pretrained card mini-en/teacher
    kdlab pretrained export runs/reproduce-mini-en/ar/avg-5.pt --as mini-en/teacher \\
        --field recipe="kdlab reproduce --preset mini-en" --field command="kdlab train ..." \\
        --results test=runs/reproduce-mini-en/decode/ar/test/summary.json
    kdlab pretrained checkset data/cache/corpora/mini-en-3h/test.jsonl --as mini-en/test-clean --n 20
    kdlab pretrained checkset data/cache/corpora/mini-en-6h/test-unseen.jsonl --as mini-en/test-unseen \
        --n 7 --per-engine
    kdlab pretrained verify mini-en/teacher
    kdlab pretrained ship runs/reproduce-mini-en --preset mini-en
    kdlab pretrained seal --all                   # record per-file sha256 on cards from before them

Every command that takes ``--ckpt`` also takes ``pretrained:<corpus>/<name>``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RECOMMENDED = ("recipe", "command", "corpus_seed", "results")  # card fields export cannot infer
DROPPED_RESULT_KEYS = ("rtf",)  # machine-dependent; not part of a model card


INPUT_ERRORS = (ValueError, OSError)  # bad --card/--field/--results values, unreadable files (exit 2)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", default=None,
                        help="models folder (default: $KDLAB_PRETRAINED, else data/pretrained)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", parents=[common], help="list the installed models with kind, parameters and results")
    c = sub.add_parser("card", parents=[common], help="print a model's card (JSON)")
    c.add_argument("spec", help="<corpus>/<name> or pretrained:<corpus>/<name>")
    e = sub.add_parser("export", parents=[common],
                       help="convert a run checkpoint into a shipped model (float16, verified)")
    e.add_argument("ckpt", type=Path, help="checkpoint inside a run folder (e.g. runs/x/avg-5.pt)")
    e.add_argument("--as", dest="spec", required=True, help="<corpus>/<name>, e.g. mini-en/teacher")
    e.add_argument("--field", action="append", default=[], metavar="KEY=VALUE",
                   help="card field (VALUE parsed as JSON, else kept as text); repeatable")
    e.add_argument("--card", type=Path, default=None, help="JSON file of card fields (before --field)")
    e.add_argument("--results", action="append", default=[], metavar="SET=SUMMARY.json",
                   help="error rates from a `kdlab decode` summary.json, stored under results.SET; repeatable")
    e.add_argument("--force", action="store_true", help="replace an existing model of that name")
    s = sub.add_parser("checkset", parents=[common],
                       help="ship the first utterances of a manifest as the check set <corpus>/check/<set>")
    s.add_argument("manifest", type=Path, help="a corpus split's manifest, e.g. .../mini-en-3h/test.jsonl")
    s.add_argument("--as", dest="spec", required=True, help="<corpus>/<set>, e.g. mini-en/test-clean")
    s.add_argument("--n", type=int, default=20, help="utterances to copy (default 20)")
    s.add_argument("--per-engine", action="store_true",
                   help="the first N utterances of each synthesizer (a set read by several: test-unseen)")
    v = sub.add_parser("verify", parents=[common],
                       help="re-decode the check sets of a model's card and compare with its figures")
    v.add_argument("spec", help="<corpus>/<name> or pretrained:<corpus>/<name>")
    h = sub.add_parser("ship", parents=[common],
                       help="export the teacher and the L_jca / ++S-KD students of a finished reproduce run")
    h.add_argument("run", type=Path, help="the reproduce run folder, e.g. runs/reproduce-mini-en")
    h.add_argument("--preset", default="mini-en", help="its reproduce preset (names the corpus: mini-en)")
    h.add_argument("--n", type=int, default=20, help="utterances per check set (default 20)")
    h.add_argument("--force", action="store_true", help="replace shipped models of the same names")
    h.add_argument("--teacher-only", action="store_true",
                   help="ship only the AR teacher (a run whose students are not trained yet)")
    h.add_argument("--family", dest="families", action="append", default=[],
                   choices=["inter", "stream", "rnnt", "all"],
                   help="ship the runs of kdlab reproduce --family instead of the paper's models (repeatable)")
    z = sub.add_parser("seal", parents=[common],
                       help="record the sha256 of cmvn.json and every tokenizer file on cards that lack them "
                            "(model.pt must still match its card; recorded hashes are never replaced)")
    z.add_argument("specs", nargs="*", metavar="spec", help="<corpus>/<name> (or --all)")
    z.add_argument("--all", action="store_true", help="every installed model")
    v.add_argument("--tolerance", type=float, default=0.01,
                   help="allowed difference in errors, as a share of the reference length (default 0.01)")


def parse_field(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses, else as a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--field {item!r}: expected KEY=VALUE")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def read_results(item: str) -> tuple[str, dict]:
    """``SET=summary.json`` → (set name, {method: rates}) from a ``kdlab decode`` summary."""
    name, sep, file = item.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"--results {item!r}: expected SET=SUMMARY.json")
    try:
        summary = json.loads(Path(file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"--results {item!r}: cannot read {file} ({err})") from None
    rates = {m: {k: v for k, v in row.items() if k not in DROPPED_RESULT_KEYS} for m, row in summary.items()}
    return name.strip(), rates


def card_fields(args: argparse.Namespace) -> dict:
    """Card fields from ``--card``, then ``--field``, then ``--results``."""
    fields: dict = {}
    if args.card is not None:
        try:
            fields.update(json.loads(args.card.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError, ValueError) as err:
            raise ValueError(f"--card {args.card}: not a JSON object ({err})") from None
    fields.update(parse_field(item) for item in args.field)
    for item in args.results:
        name, rates = read_results(item)
        fields.setdefault("results", {})[name] = rates
    return fields


def summary_line(spec: str, data: dict) -> str:
    """One line per model: name, kind, parameters, first result."""
    params = data.get("params", {}).get("total")
    line = f"{spec}\t{data.get('kind', '?')}\t{params / 1e6:.2f}M params" if params else f"{spec}\t?"
    for set_name, methods in (data.get("results") or {}).items():
        for method, row in methods.items():
            unit = "WER" if row.get("unit") == "word" else "CER"
            return f"{line}\t{set_name} {method} {unit} {row.get('rate', float('nan')):.2f}"
    return line


def do_list(args: argparse.Namespace) -> None:
    from kdlab.pretrained import store as pretrained

    names = pretrained.available(args.root)
    if not names:
        print(f"no pretrained models under {pretrained.pretrained_root(args.root)}")
    for spec in names:
        try:
            print(summary_line(spec, pretrained.card(*spec.split("/"), root=args.root)))
        except pretrained.PretrainedError as err:
            print(f"{spec}\t(unreadable card: {err})")


def do_card(args: argparse.Namespace) -> None:
    from kdlab.pretrained import store as pretrained

    print(json.dumps(pretrained.card(*pretrained.parse_spec(args.spec), root=args.root), indent=2,
                     ensure_ascii=False))


def do_export(args: argparse.Namespace) -> None:
    from kdlab.pretrained import store as pretrained

    fields = card_fields(args)
    corpus, name = pretrained.parse_spec(args.spec)
    out = pretrained.export(args.ckpt, corpus, name, fields, root=args.root, overwrite=args.force)
    print(f"{out}: exported {args.ckpt} as pretrained:{corpus}/{name} (float16, CTC posteriors verified)")
    missing = [k for k in RECOMMENDED if k not in fields]
    if missing:
        print(f"note: the card has no {', '.join(missing)} (add them with --field / --results)")


def do_checkset(args: argparse.Namespace) -> None:
    from kdlab.pretrained import store as pretrained
    from kdlab.pretrained.check import write_check_set

    corpus, set_name = pretrained.parse_spec(args.spec)
    out = write_check_set(args.manifest, args.n, corpus, set_name, root=args.root, per_engine=args.per_engine)
    which = "of each synthesizer " if args.per_engine else ""
    print(f"{out}: first {args.n} utterances {which}of {args.manifest}; card figures on it go under "
          f"--results check/{set_name}=SUMMARY.json")


def do_verify(args: argparse.Namespace) -> int:
    from kdlab.pretrained.check import verify

    rows = verify(args.spec, root=args.root)
    if not rows:
        print(f"{args.spec}: the card has no check/<set> results to verify")
    for r in rows:
        verdict = "ok" if r.agrees(args.tolerance) else "DIFFERS"
        print(f"{r.set}\t{r.method}\tcard {r.card_rate:.2f} ({r.card_errors} errors)\t"
              f"measured {r.rate:.2f} ({r.errors} errors)\t{verdict}")
    return 0 if all(r.agrees(args.tolerance) for r in rows) else 1


def do_ship(args: argparse.Namespace) -> None:
    from kdlab.pretrained.ship import run_overrides, ship_families, ship_run
    from kdlab.reproduce.presets import get_preset
    from kdlab.reproduce.reproduce_cli import apply_overrides

    preset = apply_overrides(get_preset(args.preset), run_overrides(args.run))  # the run's own --set items
    if args.families:
        folders = ship_families(args.run, preset, args.families, args.n, args.root, args.force)
    else:
        folders = ship_run(args.run, preset, args.n, args.root, args.force, args.teacher_only)
    for folder in folders:
        print(f"{folder}: exported")


def do_seal(args: argparse.Namespace) -> None:
    from kdlab.pretrained import store as pretrained

    specs = pretrained.available(args.root) if args.all else args.specs
    if not specs:
        raise ValueError("seal: name models (<corpus>/<name>) or give --all")
    for spec in specs:
        changed = pretrained.seal(pretrained.path(spec, args.root))
        print(f"{spec}: {'per-file sha256 recorded' if changed else 'already sealed, all files match'}")


ACTIONS = {"list": do_list, "card": do_card, "export": do_export, "checkset": do_checkset, "verify": do_verify,
           "ship": do_ship, "seal": do_seal}


def main(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args) or 0
