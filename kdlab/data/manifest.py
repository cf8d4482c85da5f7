"""JSONL manifests (one utterance per line) and a validation pass that reports every skipped item.

Record fields (docs/ARCHITECTURE.md): ``id``, ``path`` (absolute or relative to the manifest's folder),
``duration`` (seconds), ``text``, ``speaker``; optional ``voice`` and others are kept as they are.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kdlab.data.audio import AudioError, audio_info, read_audio
from kdlab.data.files import atomic_file, utf8_lines
from kdlab.errors import UserError

REQUIRED = ("id", "path", "duration", "text", "speaker")
REASONS = ("unreadable_audio", "empty_audio", "bad_samples", "empty_transcript", "oov", "too_short")


class ManifestError(UserError, ValueError):
    """A manifest line is not valid JSON or lacks a required field; the message names file and line."""


def read_manifest(path: str | Path) -> list[dict]:
    """Records of a JSONL manifest, ``path`` fields resolved to absolute paths."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    base = path.resolve().parent
    records, seen = [], set()
    for lineno, line in enumerate(utf8_lines(path, ManifestError), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path}:{lineno}: not valid JSON ({err.msg})") from err
        missing = [k for k in REQUIRED if k not in rec] if isinstance(rec, dict) else list(REQUIRED)
        if missing:
            raise ManifestError(f"{path}:{lineno}: record lacks field(s) {', '.join(missing)}")
        if rec["id"] in seen:
            raise ManifestError(f"{path}:{lineno}: duplicate utterance id {rec['id']!r}")
        seen.add(rec["id"])
        if not os.path.isabs(rec["path"]):
            rec["path"] = str((base / rec["path"]).resolve())
        records.append(rec)
    return records


class LimitError(UserError, ValueError):
    """A negative utterance limit (``--limit -1`` would silently drop the last utterance)."""


def first_records(records: list[dict], limit: int | None, flag: str = "--limit") -> list[dict]:
    """The first ``limit`` records (all of them for None); a negative limit is a :class:`LimitError`."""
    if limit is None:
        return records
    if limit < 0:
        raise LimitError(f"{flag} {limit}: must be >= 0 (the number of utterances to take from the start)")
    return records[:limit]


def write_manifest(path: str | Path, records: Iterable[dict]) -> None:
    """Write records as JSONL (UTF-8, one per line), atomically (temp file + rename)."""
    with atomic_file(path) as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def ctc_output_frames(duration_s: float, subsampling: int = 4, frame_shift_s: float = 0.01,
                      frame_length_s: float = 0.025) -> int:
    """Encoder frames T' for ``duration_s`` of audio.

    Fbank frames T = 1 + (duration − window) // shift (Kaldi, snip_edges); the Conv2d front-end then
    gives T' = ((T−1)//2−1)//2 for 4× subsampling (6×: ((T−1)//2−2)//3, 8×: (((T−1)//2−1)//2−1)//2).
    """
    n_shift = round(frame_shift_s * 16000)
    n = int(round(duration_s * 16000))
    t = 0 if n < round(frame_length_s * 16000) else 1 + (n - round(frame_length_s * 16000)) // n_shift
    if subsampling == 1:
        return t
    if subsampling == 2:
        return max(0, (t - 1) // 2)
    if subsampling == 4:
        return max(0, ((t - 1) // 2 - 1) // 2)
    if subsampling == 6:
        return max(0, ((t - 1) // 2 - 2) // 3)
    if subsampling == 8:
        return max(0, (((t - 1) // 2 - 1) // 2 - 1) // 2)
    raise ValueError(f"subsampling must be 1, 2, 4, 6 or 8, got {subsampling}")


def ctc_min_frames(ids: list[int]) -> int:
    """CTC needs T' ≥ L + (number of adjacent repeated tokens): a blank must separate each repeat."""
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:], strict=False) if a == b)


@dataclass
class SkipReport:
    """What validation dropped and why. ``skips``: one dict per item (id, path, reason, detail)."""

    total: int = 0
    skips: list[dict] = field(default_factory=list)

    @property
    def kept(self) -> int:
        return self.total - len(self.skips)

    def add(self, rec: dict, reason: str, detail: str) -> None:
        self.skips.append({"id": rec.get("id"), "path": rec.get("path"), "reason": reason, "detail": detail})

    def counts(self) -> dict[str, int]:
        c = Counter(s["reason"] for s in self.skips)
        ordered = [r for r in REASONS if r in c] + sorted(r for r in c if r not in REASONS)
        return {r: c[r] for r in ordered}

    def table(self, max_items: int = 20) -> str:
        lines = [f"validated {self.total} utterances: kept {self.kept}, skipped {len(self.skips)}"]
        for reason, n in self.counts().items():
            lines.append(f"  {reason:<18} {n:>7}")
        for s in self.skips[:max_items]:
            lines.append(f"  - {s['id']} [{s['reason']}] {s['detail']} ({s['path']})")
        if len(self.skips) > max_items:
            lines.append(f"  ... and {len(self.skips) - max_items} more (see the JSON report)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "counts": self.counts(), "skips": self.skips}

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")


def _oov_units(text: str, encode: Callable[[str], list[int]], unk_id: int) -> list[str]:
    """The words (or characters, for text without spaces) that encode to ``unk_id``."""
    units = text.split() if " " in text.strip() else list(text)
    return [u for u in units if unk_id in encode(u)][:5]


def _audio_duration(rec: dict, deep: bool) -> float:
    if deep:
        data, sr = read_audio(rec["path"])
        return data.shape[0] / sr
    sr, frames, _ = audio_info(rec["path"])
    return frames / sr


def validate(records: list[dict], tokenizer_encode: Callable[[str], list[int]] | None = None,
             unk_id: int | None = None, subsampling: int = 4, frame_shift_s: float = 0.01, *,
             deep: bool = False, max_speed: float = 1.0) -> tuple[list[dict], SkipReport]:
    """Keep the usable records; count every other one by reason in a :class:`SkipReport`.

    Reasons: unreadable/corrupt audio, empty audio, bad samples (NaN, infinite or absurdly loud; needs
    ``deep``), empty transcript, out-of-vocabulary units (the tokenizer emits ``unk_id``), and audio too
    short for its transcript under CTC with the given subsampling. ``deep=True`` decodes every file
    (catches truncated data and bad samples), otherwise only headers are read. Durations come from the
    audio itself, not from the manifest; ``max_speed`` (the fastest speed perturbation, e.g. 1.1) shortens
    them for the length check. A transcript with no tokens after the tokenizer's normalisation (e.g.
    punctuation only) counts as empty.
    """
    report, kept = SkipReport(total=len(records)), []
    for rec in records:
        text = str(rec.get("text", "")).strip()
        if not text:
            report.add(rec, "empty_transcript", "transcript is empty")
            continue
        try:
            duration = _audio_duration(rec, deep)
        except AudioError as err:
            report.add(rec, err.reason, str(err))
            continue
        if tokenizer_encode is None:
            kept.append(rec)
            continue
        ids = tokenizer_encode(text)
        if not ids:
            report.add(rec, "empty_transcript", f"transcript {text[:40]!r} has no tokens after normalisation")
            continue
        if unk_id is not None and unk_id in ids:
            units = " ".join(_oov_units(text, tokenizer_encode, unk_id))
            report.add(rec, "oov", f"out-of-vocabulary: {units}")
            continue
        duration /= max_speed
        frames, need = ctc_output_frames(duration, subsampling, frame_shift_s), ctc_min_frames(ids)
        if frames < need:
            report.add(rec, "too_short", f"{duration:.2f} s gives {frames} frames after {subsampling}x "
                       f"subsampling, CTC needs {need} for {len(ids)} tokens")
            continue
        kept.append(rec)
    return kept, report
