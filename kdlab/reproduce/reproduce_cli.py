"""``kdlab reproduce``: the paper's experiment end to end, resumable.

data → tokenizer + CMVN → AR teacher → NAR students at the teacher's size and ~9× smaller, each L_jca /
+F-KD / ++S-KD → checkpoint averaging → decoding on every evaluation set → Table 1 and Table 3 analogues,
diagnostics, learning curves, results.json. The L_jca baseline also keeps its stage-1 checkpoint (the paper's
stage 1: 80 epochs of F-KD; stage 2: 20 of +S-KD, Section 4.2), so that Table 1 compares each KD student with
the baseline at the same training length. The stages form a dependency graph (kdlab/reproduce/stages.py)
run by a small scheduler (kdlab/reproduce/jobs.py), ``--jobs`` one-thread subprocesses at a time; the
one-thread RTF measurements run last, alone. Finished stages are skipped on a re-run; an interrupted
training run resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kdlab.reproduce.presets import PRESETS

    parser.add_argument("--preset", default="mini-en", choices=sorted(PRESETS),
                        help="experiment size (default: mini-en, about 75-80 min on a 2-core CPU; docs/RESULTS.md)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/reproduce-<preset>)")
    parser.add_argument("--data-root", default=None, help="LibriSpeech / AISHELL-1 root for the real presets")
    parser.add_argument("--cache", default="data/cache", help="where corpora and features are kept")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override a preset field, e.g. --set teacher_epochs=4 (repeatable)")
    parser.add_argument("--family", dest="families", action="append", default=[],
                        choices=["inter", "stream", "rnnt", "all"],
                        help="instead of the paper's experiment, train and compare a related KD family "
                             "(Inter-KD, streaming layer-to-layer KD + APC, transducer one-best-path KD; "
                             "repeatable; docs/KD_FAMILIES.md); uses or trains the preset's AR teacher")
    parser.add_argument("--jobs", type=int, default=None,
                        help="stages run at once, as one-thread subprocesses (default: 2 on a CPU, 1 on a GPU); "
                             "1 runs them one after the other in this process (for debugging)")
    parser.add_argument("--train-only", action="store_true",
                        help="run the training stages only (e.g. on a GPU machine); a later call without it "
                             "decodes and writes the tables (finished stages are skipped)")


def apply_overrides(preset, overrides: list[str]):
    """``field=value`` overrides of a ReproducePreset (values parsed as YAML scalars), each checked against its
    field's type and range: a one-line :class:`~kdlab.reproduce.presets.PresetError` before any stage runs."""
    from kdlab.reproduce.presets import with_overrides

    return with_overrides(preset, overrides)


def parameter_counts(ckpts: dict[str, Path]) -> dict[str, int]:
    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.models import count_parameters

    counts = {name: count_parameters(load_model_from_checkpoint(p)[0]) for name, p in ckpts.items()}
    return {name: c.get("inference", c["total"]) for name, c in counts.items()}  # the model that decodes


def default_jobs() -> int:
    """Parallel stages by default: 2 on a CPU with 2+ cores (two 1-thread processes train ~1.6x more audio
    per second than one 2-thread process), 1 on a GPU machine (one device to share)."""
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(2, os.cpu_count() or 1))


def stage_graph(preset, root: Path, corpus: Path, splits: list[str], train_only: bool = False) -> list:
    """Training (prepare → teacher → students) and the batched decodings as a dependency graph of jobs
    (``train_only``: without the decodings)."""
    from kdlab.reproduce import eval as ev
    from kdlab.reproduce import stages as st

    graph = st.training_jobs(preset, corpus, root)
    if not train_only:
        graph += ev.decode_jobs(preset, root, st.eval_names(preset), splits)
    return graph


def run_stages(preset, root: Path, corpus: Path, splits: list[str], jobs: int,
               train_only: bool = False) -> dict[str, float]:
    """Run :func:`stage_graph` with ``jobs`` stages at a time; returns each stage's wall time (s)."""
    from kdlab.reproduce.jobs import run_jobs

    return run_jobs(stage_graph(preset, root, corpus, splits, train_only), jobs)


def record_timing(root: Path, stage_s: dict[str, float], **totals: float) -> dict:
    """Merge this call's stage wall times into ``<root>/timing.json`` (earlier calls' stages are kept)."""
    import json

    path = root / "timing.json"
    stages = json.loads(path.read_text()).get("stages_s", {}) if path.is_file() else {}
    stages.update({name: round(s, 1) for name, s in stage_s.items()})
    timing = {"stages_s": stages, "stages_sum_s": round(sum(stages.values()), 1),
              **{k: round(v, 1) for k, v in totals.items()}}
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(timing, indent=1) + "\n")
    return timing


def evaluate(preset, root: Path, splits: list[str]) -> dict:
    """Parameter counts, Table 1 and Table 3 (its one-thread RTF runs: call it when nothing else runs),
    diagnostics and learning curves of the finished runs."""
    from kdlab.reproduce import eval as ev
    from kdlab.reproduce import report as rep
    from kdlab.reproduce import stages as st

    names = st.eval_names(preset)  # the trained runs and the L_jca runs' stage-1 checkpoints
    ckpts = {name: st.model_checkpoint(root, name) for name in names}
    rep.plot_learning_curves(root, st.model_names(preset), root / "results" / "learning_curves.png",
                             preset.stage2 == "continue")
    return {"params": parameter_counts(ckpts), "t3": ev.evaluate_table3(root, preset, ckpts, splits),
            "t1": ev.evaluate_table1(root, ckpts, splits), "diag": ev.diagnostics(root, names)}


def run(preset, root: Path, data_root: Path | None, cache: Path, jobs: int | None = None,
        train_only: bool = False, overrides: list[str] | None = None) -> str:
    """The whole experiment in ``root``; returns results.md. ``jobs``: parallel stages (1: in process);
    ``train_only``: stop after the training stages (returns a line saying so); ``overrides``: the
    ``--set`` items that made ``preset`` from the named one (recorded, e.g. for the shipped models' cards)."""
    from kdlab.reproduce import eval as ev
    from kdlab.reproduce import report as rep
    from kdlab.reproduce import stages as st

    started = time.perf_counter()
    jobs = jobs or default_jobs()
    corpus = st.prepare_corpus(preset, data_root, cache)
    splits = ev.eval_sets(corpus)
    scheduled = time.perf_counter()
    stage_s = run_stages(preset, root, corpus, splits, jobs, train_only)
    scheduler_s = time.perf_counter() - scheduled
    if train_only:
        record_timing(root, stage_s, jobs=jobs, train_scheduler_s=scheduler_s)
        return f"{root}: training stages finished; run again without --train-only to decode and report"
    res = evaluate(preset, root, splits)
    timing = record_timing(root, stage_s, jobs=jobs, scheduler_s=scheduler_s,
                           total_s=time.perf_counter() - started)
    names = st.model_names(preset)
    meta = {"preset": preset.name, **({"overrides": list(overrides)} if overrides else {}), "corpus": str(corpus),
            "machine": f"{platform.machine()} {os.cpu_count()} cores", "jobs": jobs,
            "wall_min_this_call": round(timing["total_s"] / 60, 1),
            "train_min": round(sum(train_seconds(root / n) for n in names) / 60, 1),
            "ar_end_rule": ev.END_RULE}
    report = rep.Report(rep.table1_records(preset, res["params"], res["t1"]),
                        rep.table3_records(preset, res["params"], res["t3"]),
                        rep.diagnostics_records(preset, res["params"], res["diag"]), ev.set_labels(splits),
                        meta, timing)
    return rep.write_report(root / "results", preset, report)


def run_families(preset, root: Path, families: list[str], data_root: Path | None, cache: Path,
                 jobs: int | None = None) -> str:
    """The KD-family comparisons in ``root/families`` (the paper's teacher in ``root/ar``); returns their
    Markdown tables (also in ``root/results/families.md``)."""
    from kdlab.reproduce import eval as ev
    from kdlab.reproduce import families as fam
    from kdlab.reproduce import stages as st
    from kdlab.reproduce.family_report import write_family_report
    from kdlab.reproduce.jobs import run_jobs

    started = time.perf_counter()
    jobs = jobs or default_jobs()
    corpus = st.prepare_corpus(preset, data_root, cache)
    splits = [s for s in ev.eval_sets(corpus) if s.startswith("test")]
    runs = fam.family_runs(families)
    stage_s = run_jobs(fam.family_jobs(preset, corpus, root, runs, splits), jobs)
    timing = record_timing(root, stage_s, jobs=jobs, total_s=time.perf_counter() - started)
    meta = {"preset": preset.name, "families": families, "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "jobs": jobs, "wall_min_this_call": round(timing["total_s"] / 60, 1)}
    return write_family_report(root, runs, splits, ev.set_labels(ev.eval_sets(corpus)), meta)


def train_seconds(run_dir: Path) -> float:
    import json

    done = run_dir / "DONE"
    return float(json.loads(done.read_text()).get("seconds", 0.0)) if done.is_file() else 0.0


def main(args: argparse.Namespace) -> int:
    """Check the preset and its ``--set`` items, then run the experiment in ``--out`` holding that folder's
    lock (a second ``kdlab reproduce`` on the same folder gets one line naming this one's pid)."""
    from kdlab.data.locks import folder_lock
    from kdlab.errors import UserError
    from kdlab.reproduce.jobs import StageFailed
    from kdlab.reproduce.presets import get_preset

    if args.families and args.train_only:
        raise UserError("--train-only applies to the paper's experiment, not to --family runs")
    preset = apply_overrides(get_preset(args.preset), args.overrides)
    root = Path(args.out or f"runs/reproduce-{preset.name}")
    from kdlab.reproduce.stages import check_preset

    check_preset(preset)  # a misspelt stage setting fails here, before any training
    if preset.teacher_from:
        from kdlab.reproduce.adopt import check_folder, check_teacher_from
        from kdlab.reproduce.stages import TEACHER

        check_teacher_from(preset.teacher_from, preset.name)
        check_folder(root / TEACHER, preset.teacher_from)
    data_root = Path(args.data_root) if args.data_root else None
    try:
        with folder_lock(root, "runs kdlab reproduce in"):  # the stages' subfolders have locks of their own
            if args.families:
                md = run_families(preset, root, args.families, data_root, Path(args.cache), args.jobs)
            else:
                md = run(preset, root, data_root, Path(args.cache), args.jobs, args.train_only, args.overrides)
    except StageFailed as err:
        print(f"kdlab reproduce: {err}", file=sys.stderr)
        return 1
    print(md)
    print(f"results: {root / 'results'}", file=sys.stderr)
    return 0
