"""Utterances for inspection: audio and reference text of the shipped check sets or any manifest."""

from __future__ import annotations

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
