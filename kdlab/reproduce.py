"""``kdlab reproduce``: the paper's experiment end to end, resumable.

data → AR teacher → NAR students at the teacher's size and ~9× smaller, each L_jca / +F-KD / ++S-KD →
checkpoint averaging → decoding → Table 1 and Table 3 analogues, learning curves, results.json.
Finished stages are skipped on a re-run; an interrupted training run resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kdlab.reproduce_presets import PRESETS

    parser.add_argument("--preset", default="mini-en", choices=sorted(PRESETS),
                        help="experiment size (default: mini-en, 29 min measured on a 2-core CPU)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/reproduce-<preset>)")
    parser.add_argument("--data-root", default=None, help="LibriSpeech / AISHELL-1 root for the real presets")
    parser.add_argument("--cache", default="data/cache", help="where corpora and features are kept")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override a preset field, e.g. --set teacher_epochs=4 (repeatable)")


def apply_overrides(preset, overrides: list[str]):
    """``field=value`` overrides of a ReproducePreset (values parsed as YAML scalars)."""
    import dataclasses

    import yaml

    changes = {}
    names = {f.name for f in dataclasses.fields(preset)}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in names:
            raise SystemExit(f"kdlab reproduce --set {item!r}: expected FIELD=VALUE with FIELD in {sorted(names)}")
        value = yaml.safe_load(raw)
        if key == "corpus":
            value = dataclasses.replace(preset.corpus, **value)
        changes[key] = value
    return dataclasses.replace(preset, **changes)


def parameter_counts(ckpts: dict[str, Path]) -> dict[str, int]:
    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.models import count_parameters

    return {name: count_parameters(load_model_from_checkpoint(p)[0])["total"] for name, p in ckpts.items()}


def run(preset, root: Path, data_root: Path | None, cache: Path) -> str:
    from kdlab import reproduce_eval as ev
    from kdlab import reproduce_report as rep
    from kdlab import reproduce_stages as st

    started = time.perf_counter()
    corpus = st.prepare_corpus(preset, data_root, cache)
    teacher = st.teacher_stage(preset, corpus, root)
    ckpts = {"ar": teacher, **st.student_stages(preset, corpus, root, teacher)}
    params = parameter_counts(ckpts)
    t1 = ev.evaluate_table1(root, ckpts)
    t3 = ev.evaluate_table3(root, preset, ckpts)
    t1_rows = rep.table1_records(preset, params, t1)
    t3_rows = rep.table3_records(preset, params, t3)
    rep.plot_learning_curves(root, list(ckpts), root / "results" / "learning_curves.png")
    meta = {"preset": preset.name, "corpus": str(corpus), "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "wall_min_this_call": round((time.perf_counter() - started) / 60, 1),
            "train_min": round(sum(train_seconds(root / n) for n in ckpts) / 60, 1)}
    return rep.write_report(root / "results", preset, t1_rows, t3_rows, meta)


def train_seconds(run_dir: Path) -> float:
    import json

    done = run_dir / "DONE"
    return float(json.loads(done.read_text()).get("seconds", 0.0)) if done.is_file() else 0.0


def main(args: argparse.Namespace) -> int:
    from kdlab.reproduce_presets import get_preset

    preset = apply_overrides(get_preset(args.preset), args.overrides)
    root = Path(args.out or f"runs/reproduce-{preset.name}")
    md = run(preset, root, Path(args.data_root) if args.data_root else None, Path(args.cache))
    print(md)
    print(f"results: {root / 'results'}", file=sys.stderr)
    return 0
