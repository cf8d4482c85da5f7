"""Training data checks: the validation of ``kdlab data check`` run on a run's train and dev manifests.

Cheap checks run up front (audio headers, transcripts against the run's tokenizer — empty, no tokens,
out-of-vocabulary — and length under 4× subsampling, at the fastest speed perturbation); audio that fails
to decode later (CMVN fitting, an epoch) is caught per utterance. Every utterance left out is counted by
reason, printed when training starts and written to ``<run>/data_report.json`` (``{split: {total, kept,
counts, skips}}``); an utterance recorded there as failing to decode is left out of later runs in the
folder too. With ``data.strict`` any unusable utterance is an error instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdlab.config import ExperimentConfig
from kdlab.data.files import write_text_atomic
from kdlab.data.manifest import ManifestError, SkipReport, read_manifest, validate
from kdlab.nn.subsampling import SUBSAMPLING

DATA_REPORT = "data_report.json"
SPLITS = ("train", "dev")


def check_split(cfg: ExperimentConfig, split: str, tokenizer: Any) -> tuple[list[dict], SkipReport]:
    """Usable records of ``split`` and the report of those left out; raises :class:`ManifestError` when
    none is usable, or when any is not and ``data.strict`` is set."""
    from kdlab.data.features import SPEEDS
    from kdlab.tokens import UNK

    manifest = cfg.data.manifest(split)
    fastest = max(SPEEDS) if split == "train" and cfg.data.speed_perturb else 1.0
    kept, report = validate(read_manifest(manifest), tokenizer.encode, UNK, SUBSAMPLING, max_speed=fastest)
    enforce(cfg, manifest, report)
    if not kept:
        raise ManifestError(f"{manifest}: no usable utterance ({_counts(report)})")
    return kept, report


def enforce(cfg: ExperimentConfig, manifest: str | Path, report: SkipReport) -> None:
    """Under ``data.strict``, an unusable utterance is an error naming the first one."""
    if cfg.data.strict and report.skips:
        first = report.skips[0]
        raise ManifestError(f"{manifest}: {len(report.skips)} unusable utterance(s) ({_counts(report)}) and "
                            f"data.strict is set; first: {first['id']} [{first['reason']}] {first['detail']}")


def _counts(report: SkipReport) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in report.counts().items()) or "none skipped"


def summary(split: str, report: SkipReport) -> str:
    """One line: totals and counts by reason."""
    return (f"data {split}: {report.total} utterances, kept {report.kept}, skipped {len(report.skips)}"
            f" ({_counts(report)})")


def load_report(run_dir: Path) -> dict[str, SkipReport]:
    """The saved report of a run folder (empty when there is none)."""
    path = run_dir / DATA_REPORT
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {split: SkipReport(total=d["total"], skips=d["skips"]) for split, d in data.items()}


def save_report(run_dir: Path, reports: dict[str, SkipReport]) -> None:
    """Write the report atomically (other DDP ranks may be reading the previous one)."""
    data = {split: report.to_dict() for split, report in reports.items()}
    write_text_atomic(run_dir / DATA_REPORT, json.dumps(data, ensure_ascii=False, indent=1))


def merge(report: SkipReport, skips: list[dict]) -> list[dict]:
    """Add the ``skips`` whose utterance ``report`` does not list yet; returns those added."""
    known = {s["id"] for s in report.skips}
    added = [{k: s[k] for k in ("id", "path", "reason", "detail")} for s in skips if s["id"] not in known]
    report.skips += added
    return added


def usable_data(cfg: ExperimentConfig, run_dir: Path, tokenizer: Any, main: bool) -> dict[str, list[dict]]:
    """Usable records per split (minus utterances the saved report lists as failing to decode); the main
    process prints the counts and writes the report."""
    saved, reports, records = load_report(run_dir), {}, {}
    for split in SPLITS:
        kept, report = check_split(cfg, split, tokenizer)
        merge(report, saved[split].skips if split in saved else [])
        enforce(cfg, cfg.data.manifest(split), report)
        dropped = {s["id"] for s in report.skips}
        records[split], reports[split] = [r for r in kept if r["id"] not in dropped], report
        if not records[split]:
            raise ManifestError(f"{cfg.data.manifest(split)}: no usable utterance ({_counts(report)})")
    if main:
        save_report(run_dir, reports)
        for split in SPLITS:
            print(summary(split, reports[split]), flush=True)
    return records


def record_failures(run_dir: Path, items: list[dict]) -> None:
    """Add utterances that failed to decode (dicts with ``split``) to the saved report; print the new ones."""
    if not items:
        return
    reports = load_report(run_dir)
    for split in {it["split"] for it in items}:
        report = reports.setdefault(split, SkipReport())
        for s in merge(report, [it for it in items if it["split"] == split]):
            print(f"data {split}: skipped {s['id']} [{s['reason']}] {s['detail']}", flush=True)
    save_report(run_dir, reports)
