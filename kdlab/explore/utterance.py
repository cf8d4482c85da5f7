"""Utterances for inspection: audio and reference text of the shipped check sets, any manifest, or a user's own
recording (a file path or an uploaded file's bytes)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from kdlab.data.features import SAMPLE_RATE


@dataclass
class Utterance:
    """One utterance: ``audio`` (N,) float32 mono at ``sample_rate`` (16 kHz), reference ``text``."""

    id: str
    text: str
    audio: torch.Tensor  # (N,)
    sample_rate: int
    path: Path
    condition: str = ""

    @property
    def duration(self) -> float:
        return self.audio.numel() / self.sample_rate


def _manifest_of(corpus_or_manifest: str | Path, set_name: str | None, root: str | Path | None) -> Path:
    """A shipped check set (``"mini-en"``, ``"test-clean"``) or a manifest path (``set_name`` None)."""
    from kdlab.pretrained.check import check_manifest
    from kdlab.pretrained.store import PretrainedError

    if set_name is None:
        return Path(corpus_or_manifest)
    manifest = check_manifest(str(corpus_or_manifest), set_name, root)
    if not manifest.is_file():
        raise PretrainedError(f"no shipped check set {corpus_or_manifest}/{set_name} (looked for {manifest})")
    return manifest


def load_set(corpus_or_manifest: str | Path = "mini-en", set_name: str | None = "test-clean",
             limit: int | None = None, root: str | Path | None = None) -> list[Utterance]:
    """Utterances of a shipped check set (``load_set("mini-en", "test-other")``) or of a manifest file
    (``load_set("data/cache/corpora/mini-en-6h/test.jsonl", None)``), in manifest order."""
    from kdlab.data.audio import load_audio
    from kdlab.evaluate.sets import load_records

    records = load_records(_manifest_of(corpus_or_manifest, set_name, root), limit=limit)
    return [Utterance(r["id"], r["text"], load_audio(r["path"], SAMPLE_RATE), SAMPLE_RATE, Path(r["path"]),
                      r.get("condition", "")) for r in records]


YOUR_AUDIO = "your audio"  # the ``condition`` of a user's own recording


def load_file(path: str | Path, text: str = "", utt_id: str | None = None) -> Utterance:
    """A user's own recording: any file soundfile reads (wav, flac, ogg, mp3), stereo averaged, resampled to
    16 kHz. ``text`` is what is said, if known (the error views need it). Raises ``AudioError`` naming the file."""
    from kdlab.data.audio import load_audio

    path = Path(path).expanduser()
    wave = load_audio(path, SAMPLE_RATE)  # (N,)
    return Utterance(utt_id or path.stem, " ".join(text.split()), wave, SAMPLE_RATE, path, YOUR_AUDIO)


def load_upload(name: str, content: bytes, text: str = "") -> Utterance:
    """An uploaded file's bytes (``ipywidgets.FileUpload``) as an :class:`Utterance` named after the file."""
    suffix = Path(name).suffix or ".wav"
    with tempfile.TemporaryDirectory(prefix="kdlab-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"
        path.write_bytes(bytes(content))
        utt = load_file(path, text, utt_id=Path(name).stem or "upload")
    utt.path = Path(name)
    return utt
