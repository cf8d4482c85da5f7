"""Write recognition results the icefall way: ``recogs-*``, ``errs-*`` and ``wer-summary-*`` files, and
publish a decode's results into its output folder all at once (:func:`staged_results`, :func:`publish_results`).

A decode writes its files into a staging folder ``<out>/.decode-<random>.tmp/`` first; only when every file is
written are they moved into ``<out>`` (the old ``summary.json`` removed first, the new one written last). A
failure while writing (a full disk) leaves ``<out>`` as it was; a kill while moving leaves it without a
``summary.json``, never new result files beside an old summary that looks valid.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

from kdlab.data.files import write_text_atomic
from kdlab.errors import UserError
from kdlab.evaluate.metrics import (
    CORRECT,
    DEL,
    INS,
    SUB,
    AlignOp,
    ErrorStats,
    align,
    stats_from_alignment,
    tokens_for_unit,
)

RATE_NAME = {"char": "CER", "word": "WER"}
SUMMARY_FILE = "summary.json"
STAGING_PREFIX, STAGING_SUFFIX = ".decode-", ".tmp"


class ResultsWriteError(UserError):
    """The result files cannot be written (a full disk, a quota); the message names the folder and says what
    state it is in."""


def format_summary(stats: ErrorStats, unit: str) -> str:
    """One line for logs, e.g. ``CER 12.34 % [S 3, I 1, D 2, I+D 0.45 %]``."""
    return (f"{_rate_name(unit)} {stats.rate:.2f} % [S {stats.sub}, I {stats.ins}, D {stats.dele}, "
            f"I+D {stats.i_plus_d:.2f} %]")


def _rate_name(unit: str) -> str:
    if unit not in RATE_NAME:
        raise ValueError(f"unknown unit {unit!r}; expected one of {tuple(RATE_NAME)}")
    return RATE_NAME[unit]


def format_alignment(ops: Sequence[AlignOp]) -> str:
    """Icefall's per-utterance style: correct tokens as is, errors as ``(ref->hyp)`` with ``*`` for none."""
    parts = []
    for op, r, h in ops:
        parts.append(r if op == CORRECT else f"({'*' if r is None else r}->{'*' if h is None else h})")
    return " ".join(parts)


def _check_inputs(ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str]) -> None:
    if not len(ids) == len(refs) == len(hyps):
        raise ValueError(f"lengths differ: {len(ids)} ids, {len(refs)} refs, {len(hyps)} hyps")
    dup = [k for k, n in Counter(ids).items() if n > 1]
    if dup:
        raise ValueError(f"duplicate utterance ids in results: {dup[:5]}")


def _frequent_errors(all_ops: list[list[AlignOp]], top: int) -> list[str]:
    counts = {op: Counter() for op in (SUB, DEL, INS)}
    for ops in all_ops:
        for op, r, h in ops:
            if op == SUB:
                counts[SUB][f"{r} -> {h}"] += 1
            elif op == DEL:
                counts[DEL][r] += 1
            elif op == INS:
                counts[INS][h] += 1
    lines = []
    for op, title in ((SUB, "SUBSTITUTIONS"), (DEL, "DELETIONS"), (INS, "INSERTIONS")):
        lines.append(f"\n{title}: count ref -> hyp" if op == SUB else f"\n{title}: count token")
        ranked = sorted(counts[op].items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        lines += [f"{n}   {key}" for key, n in ranked]
    return lines


def write_results(out_dir: str | Path, name: str, ids: Sequence[str], refs: Sequence[str],
                  hyps: Sequence[str], unit: str, top_errors: int = 30) -> ErrorStats:
    """Score hypotheses and write the three result files under ``out_dir``; returns the totals.

    Utterances are written sorted by id so that files from different runs can be diffed.
    """
    _check_inputs(ids, refs, hyps)
    rate_name = _rate_name(unit)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    order = sorted(range(len(ids)), key=lambda k: ids[k])
    total, all_ops, recog_lines, detail_lines = ErrorStats(), [], [], []
    for k in order:
        r, h = tokens_for_unit(refs[k], unit), tokens_for_unit(hyps[k], unit)
        ops = align(r, h)
        total = total + stats_from_alignment(ops)
        all_ops.append(ops)
        recog_lines += [f"{ids[k]}:\tref={r}", f"{ids[k]}:\thyp={h}"]
        detail_lines.append(f"{ids[k]}:\t{format_alignment(ops)}")
    (out_dir / f"recogs-{name}.txt").write_text("\n".join(recog_lines) + "\n")
    head = (f"%{rate_name} {total.rate:.2f} [ {total.errors} / {total.n_ref}, {total.ins} ins, "
            f"{total.dele} del, {total.sub} sub ]")
    body = [head, f"%I+D {total.i_plus_d:.2f}", f"%SER {_sentence_error(total):.2f} "
            f"[ {total.n_utts_err} / {total.n_utts} ]", "", "PER-UTT DETAILS: corr or (ref->hyp)"]
    body += detail_lines + _frequent_errors(all_ops, top_errors)
    (out_dir / f"errs-{name}.txt").write_text("\n".join(body) + "\n")
    summary = f"settings\t{rate_name}\tI+D\tsub\tins\tdel\tref\n{name}\t{total.rate:.2f}\t" \
              f"{total.i_plus_d:.2f}\t{total.sub}\t{total.ins}\t{total.dele}\t{total.n_ref}\n"
    (out_dir / f"wer-summary-{name}.txt").write_text(summary)
    return total


def _sentence_error(stats: ErrorStats) -> float:
    return 100.0 * stats.n_utts_err / stats.n_utts if stats.n_utts else 0.0


def remove_stale_staging(out_dir: str | Path) -> list[Path]:
    """Delete the staging folders that a killed decode left in ``out_dir``; returns them. Call it only while
    holding the folder's lock (:func:`kdlab.data.locks.folder_lock`): then no live decode owns one."""
    stale = sorted(Path(out_dir).glob(f"{STAGING_PREFIX}*{STAGING_SUFFIX}"))
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


@contextlib.contextmanager
def staged_results(out_dir: str | Path) -> Iterator[Path]:
    """A fresh staging folder inside ``out_dir`` (created) for the ``with`` block, removed at its end; an
    ``OSError`` inside the block becomes a one-line :class:`ResultsWriteError` (``out_dir`` unchanged)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX))
    try:
        yield staging
    except OSError as err:
        raise ResultsWriteError(f"{out_dir}: cannot write the result files ({err.strerror or err}); the "
                                "results already there, if any, are unchanged") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_results(staging: Path, out_dir: str | Path, summary: dict) -> Path:
    """Move every staged file into ``out_dir`` and write ``summary`` as its ``summary.json``, last.

    The old ``summary.json`` is removed before the first move, so an interruption in between leaves a folder
    without a summary (visibly incomplete: decode again) instead of new files beside an old summary. Returns
    the summary's path."""
    out_dir = Path(out_dir)
    staged = sorted(p for p in staging.iterdir() if p.is_file())
    for path in staged:
        _fsync_file(path)  # on disk before the rename makes it visible
    (out_dir / SUMMARY_FILE).unlink(missing_ok=True)
    try:
        for path in staged:
            os.replace(path, out_dir / path.name)
        return write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    except OSError as err:
        raise ResultsWriteError(f"{out_dir}: cannot write the results ({err.strerror or err}); the folder has "
                                f"no {SUMMARY_FILE} now: decode again") from err
