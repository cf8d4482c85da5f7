"""Manifests for real corpora: LibriSpeech, AISHELL-1 and Kaldi-style data directories.

Every preparer writes the JSONL manifests of docs/ARCHITECTURE.md (absolute audio paths, durations from
the audio headers) and returns a :class:`PrepareReport` that counts, never silently drops, mismatches:
transcripts without audio, audio without transcript, unreadable audio (left out, since its duration is
unknown) and empty transcripts (kept; :func:`kdlab.data.manifest.validate` skips them later).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from kdlab.data.audio import AudioError, audio_info
from kdlab.data.files import utf8_lines
from kdlab.data.manifest import write_manifest
from kdlab.errors import UserError

KINDS = ("missing_audio", "missing_transcript", "unreadable_audio", "empty_transcript")


class PrepareError(UserError, ValueError):
    """The source tree or a data file is not in the expected layout; the message names the file."""


@dataclass
class PrepareReport:
    """Utterances written per manifest and every problem found, by kind."""

    source: str
    written: dict[str, int] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)

    def add(self, kind: str, utt_id: str, path: str | None, detail: str, split: str = "") -> None:
        self.problems.append({"kind": kind, "id": utt_id, "path": path, "split": split, "detail": detail})

    def counts(self) -> dict[str, int]:
        c = Counter(p["kind"] for p in self.problems)
        return {k: c[k] for k in KINDS if c[k]}

    def table(self, max_items: int = 20) -> str:
        lines = [f"prepared {self.source}"]
        lines += [f"  {name:<24} {n:>8} utterances" for name, n in self.written.items()]
        lines += [f"  {kind:<24} {n:>8}" for kind, n in self.counts().items()]
        lines += [f"  - [{p['kind']}] {p['id']} {p['detail']}" for p in self.problems[:max_items]]
        if len(self.problems) > max_items:
            lines.append(f"  ... and {len(self.problems) - max_items} more (see the JSON report)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def save(self, path: str | Path) -> None:
        data = {"source": self.source, "written": self.written, "counts": self.counts(),
                "problems": self.problems}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def _record(utt_id: str, audio: Path, text: str, speaker: str, report: PrepareReport,
            split: str) -> dict | None:
    """A manifest record, or None (reported) when the audio cannot be read."""
    try:
        sr, frames, _ = audio_info(audio)
    except AudioError as err:
        report.add("unreadable_audio", utt_id, str(audio), str(err), split)
        return None
    if not text.strip():
        report.add("empty_transcript", utt_id, str(audio), "transcript is empty", split)
    return {"id": utt_id, "path": str(audio.resolve()), "duration": round(frames / sr, 4),
            "text": text.strip(), "speaker": speaker}


def _pair(transcripts: dict[str, str], audio: dict[str, Path], speaker_of, report: PrepareReport,  # noqa: ANN001
          split: str) -> list[dict]:
    """Records for ids with both transcript and audio; the rest go to the report."""
    for utt_id in sorted(set(transcripts) - set(audio)):
        report.add("missing_audio", utt_id, None, "transcript has no audio file", split)
    for utt_id in sorted(set(audio) - set(transcripts)):
        report.add("missing_transcript", utt_id, str(audio[utt_id]), "audio file has no transcript", split)
    records = (_record(u, audio[u], transcripts[u], speaker_of(u), report, split)
               for u in sorted(set(transcripts) & set(audio)))
    return [r for r in records if r is not None]


def _split_info(records: list[dict]) -> dict:
    return {"utterances": len(records), "hours": round(sum(r["duration"] for r in records) / 3600, 3),
            "speakers": len({r["speaker"] for r in records})}


def _write_corpus(out_dir: Path, manifests: dict[str, list[dict]], info: dict, report: PrepareReport) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, records in manifests.items():
        write_manifest(out_dir / f"{name}.jsonl", records)
        report.written[f"{name}.jsonl"] = len(records)
    info["splits"] = {name: _split_info(recs) for name, recs in manifests.items()}
    (out_dir / "info.json").write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
    report.save(out_dir / "prepare_report.json")


# ---------------------------------------------------------------- LibriSpeech
def _read_trans(path: Path) -> dict[str, str]:
    out = {}
    for lineno, line in enumerate(utf8_lines(path, PrepareError), 1):
        if line.strip():
            utt_id, _, text = line.strip().partition(" ")
            if utt_id in out:
                raise PrepareError(f"{path}:{lineno}: duplicate utterance id {utt_id!r}")
            out[utt_id] = text
    return out


def _librispeech_split(split_dir: Path, report: PrepareReport) -> list[dict]:
    transcripts: dict[str, str] = {}
    audio: dict[str, Path] = {}
    for chapter in sorted(p for p in split_dir.glob("*/*") if p.is_dir()):
        trans = chapter / f"{chapter.parent.name}-{chapter.name}.trans.txt"
        if trans.is_file():
            transcripts.update(_read_trans(trans))
        audio.update({f.stem: f for f in chapter.glob("*.flac")})
    return _pair(transcripts, audio, lambda u: u.split("-")[0], report, split_dir.name)


def prepare_librispeech(root: str | Path, out_dir: str | Path,
                        splits: list[str] | None = None) -> PrepareReport:
    """``LibriSpeech/<split>/<spk>/<chapter>/*.flac`` + ``<spk>-<chapter>.trans.txt`` → ``<split>.jsonl``.

    ``root`` is the ``LibriSpeech`` folder or its parent. Also writes the aliases ``train.jsonl`` (all
    train-* splits), ``dev.jsonl`` (all dev-*) and ``test.jsonl`` (test-clean, else all test-*).
    """
    root = Path(root)
    base = root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root
    if not base.is_dir():
        raise PrepareError(f"{base}: LibriSpeech folder not found")
    found = sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*/*/*.trans.txt")))
    for name in splits or []:
        if name not in found:
            raise PrepareError(f"{base / name}: split not found (found: {', '.join(found) or 'none'})")
    names = splits or found
    if not names:
        raise PrepareError(f"{base}: no split with <spk>/<chapter>/<spk>-<chapter>.trans.txt inside")
    report = PrepareReport(source=str(base))
    manifests = {name: _librispeech_split(base / name, report) for name in names}
    for alias, prefix in (("train", "train-"), ("dev", "dev-"), ("test", "test-")):
        members = [n for n in names if n.startswith(prefix)]
        if alias == "test" and "test-clean" in members:
            members = ["test-clean"]
        if members:
            manifests[alias] = [r for n in members for r in manifests[n]]
    info = {"name": "librispeech", "language": "en", "unit": "word", "seed": None,
            "source": str(base.resolve())}
    _write_corpus(Path(out_dir), manifests, info, report)
    return report


# ---------------------------------------------------------------- AISHELL-1
def prepare_aishell(root: str | Path, out_dir: str | Path) -> PrepareReport:
    """``data_aishell/wav/<split>/<spk>/*.wav`` + ``data_aishell/transcript/aishell_transcript_v0.8.txt``.

    ``root`` is ``data_aishell`` or its parent. Transcripts are space-separated words; the manifest text
    joins them into characters only. Writes train/dev/test.jsonl.
    """
    root = Path(root)
    base = root / "data_aishell" if (root / "data_aishell").is_dir() else root
    trans = base / "transcript" / "aishell_transcript_v0.8.txt"
    if not trans.is_file():
        raise PrepareError(f"{trans}: AISHELL-1 transcript file not found")
    texts = {u: "".join(t.split()) for u, t in _read_trans(trans).items()}
    report = PrepareReport(source=str(base))
    manifests, in_split = {}, set()
    for split in ("train", "dev", "test"):
        split_dir = base / "wav" / split
        if not split_dir.is_dir():
            tars = list((base / "wav").glob("*.tar.gz")) if (base / "wav").is_dir() else []
            hint = " (extract the per-speaker .tar.gz archives in data_aishell/wav first)" if tars else ""
            raise PrepareError(f"{split_dir}: split folder not found{hint}")
        audio = {f.stem: f for f in sorted(split_dir.glob("*/*.wav"))}
        in_split |= set(audio)
        split_texts = {u: texts[u] for u in audio if u in texts}
        speakers = {u: f.parent.name for u, f in audio.items()}
        manifests[split] = _pair(split_texts, audio, speakers.__getitem__, report, split)
    for utt_id in sorted(set(texts) - in_split):
        report.add("missing_audio", utt_id, None, "transcript has no audio file in any split")
    info = {"name": "aishell", "language": "zh", "unit": "char", "seed": None, "source": str(base.resolve())}
    _write_corpus(Path(out_dir), manifests, info, report)
    return report


# ---------------------------------------------------------------- Kaldi data directories
def _kaldi_table(path: Path) -> dict[str, str]:
    """'<key> <value...>' lines → dict; a repeated key is an error naming file and line."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(utf8_lines(path, PrepareError), 1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if key in out:
            raise PrepareError(f"{path}:{lineno}: duplicate key {key!r}")
        out[key] = value.strip()
    return out


def _kaldi_audio(data_dir: Path) -> dict[str, Path]:
    scp = data_dir / "wav.scp"
    audio = {}
    for utt_id, value in _kaldi_table(scp).items():
        if value.endswith("|") or " " in value or value.startswith(("ark:", "scp:")):
            raise PrepareError(f"{scp}: utterance {utt_id!r}: only plain file paths are supported, got "
                               f"{value!r} (run the command/extract the archive and list the files)")
        path = Path(value)
        if not path.is_absolute() and not path.exists() and (data_dir / path).exists():
            path = data_dir / path
        audio[utt_id] = path
    return audio


def prepare_kaldi(data_dir: str | Path, out_jsonl: str | Path) -> PrepareReport:
    """``wav.scp`` (plain paths) + ``text`` (+ optional ``utt2spk``) → one JSONL manifest.

    Piped commands and archives in wav.scp, and ``segments`` files, raise :class:`PrepareError`.
    """
    data_dir = Path(data_dir)
    for name in ("wav.scp", "text"):
        if not (data_dir / name).is_file():
            raise PrepareError(f"{data_dir / name}: required Kaldi file not found")
    if (data_dir / "segments").exists():
        raise PrepareError(f"{data_dir / 'segments'}: segmented recordings are not supported "
                           "(cut the segments into files first)")
    texts = _kaldi_table(data_dir / "text")
    spk = _kaldi_table(data_dir / "utt2spk") if (data_dir / "utt2spk").is_file() else {}
    report = PrepareReport(source=str(data_dir))
    audio = _kaldi_audio(data_dir)
    records = _pair(texts, audio, lambda u: spk.get(u, u.split("-")[0]), report, data_dir.name)
    out_jsonl = Path(out_jsonl)
    write_manifest(out_jsonl, records)
    report.written[out_jsonl.name] = len(records)
    report.save(out_jsonl.with_name(out_jsonl.stem + ".prepare_report.json"))
    return report
