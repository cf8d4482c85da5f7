"""Evaluation sets for the decode / align / bench commands: resolve a split of the run's corpus (``dev``,
``test``, ``dev-other``, …) or a ``PATH.jsonl`` manifest, batch them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdlab.data.features import FRAME_SHIFT_S
from kdlab.errors import UserError


class SetError(UserError, ValueError):
    """An evaluation set cannot be found or read; the message names it."""


SPLIT_ALIASES = {"dev-clean": "dev", "test-clean": "test"}  # LibriSpeech names of the clean sets


def corpus_splits(corpus: str | Path) -> list[str]:
    """Split names of a corpus folder (its ``<split>.jsonl`` manifests), sorted."""
    return sorted(p.stem for p in Path(corpus).glob("*.jsonl"))


def is_split_name(name: str) -> bool:
    """A bare split name (``dev``, ``test-other``) rather than a manifest path."""
    return "/" not in name and not name.endswith(".jsonl") and not Path(name).is_file()


def resolve_set(name: str, exp_cfg: Any) -> Path:
    """A split of the run's corpus (``dev``, ``test``, ``dev-other``, …; ``dev-clean``/``test-clean`` alias
    ``dev``/``test``) -> its manifest; anything else is a manifest path."""
    path = _split_manifest(name, exp_cfg.data) if is_split_name(name) else Path(name)
    if not path.is_file():
        raise SetError(f"--set {name}: manifest {path} not found")
    return path


def _split_manifest(name: str, data: Any) -> Path:
    """Manifest of the split ``name`` in ``data.corpus`` (an explicit ``data.dev`` wins for ``dev``)."""
    split = SPLIT_ALIASES.get(name, name)
    explicit = getattr(data, split, None) if split in ("dev", "test") else None
    if explicit:
        return Path(explicit)
    if not data.corpus:
        raise SetError(f"--set {name}: the run's config has no data.corpus; pass a manifest path instead")
    path = Path(data.corpus) / f"{split}.jsonl"
    if not path.is_file():
        have = ", ".join(corpus_splits(data.corpus)) or "none"
        raise SetError(f"--set {name}: the corpus {data.corpus} has no split {split!r} (it has: {have}; "
                       f"dev-clean/test-clean stand for dev/test), or pass a manifest path")
    return path


def load_records(path: Path, limit: int | None = None, ids: list[str] | None = None) -> list[dict]:
    """Manifest records (paths made absolute), optionally the first ``limit`` or only ``ids``."""
    from kdlab.data.manifest import first_records, read_manifest

    records = read_manifest(path)
    if ids is not None:
        by_id = {r["id"]: r for r in records}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SetError(f"{path}: utterance id(s) not in the manifest: {', '.join(missing[:5])}")
        records = [by_id[i] for i in ids]
    records = first_records(records, limit)  # a negative limit is a one-line error
    if not records:
        raise SetError(f"{path}: no utterances to decode")
    return records


def check_records(path: Path, records: list[dict]) -> None:
    """Refuse a set with an item that cannot be decoded and scored, before anything is decoded: each item's
    audio must be readable with samples (its header is read) and its transcript non-empty. One line names the
    first such item (manifest line, id, file, reason) and how many there are, by reason."""
    from kdlab.data.manifest import validate

    _, report = validate(records)
    if not report.skips:
        return
    first = report.skips[0]
    counts = ", ".join(f"{reason} {n}" for reason, n in report.counts().items())
    raise SetError(f"{path}:{_line_of(path, first['id'])}: utterance {first['id']!r}: {first['detail']}; "
                   f"{len(report.skips)} of {report.total} utterances cannot be decoded "
                   f"({counts}), nothing was decoded; fix or remove them (`kdlab data check {path}` lists them)")


def _line_of(path: Path, utt_id: str) -> int | str:
    """The manifest line holding utterance ``utt_id`` (``?`` if not found)."""
    import json

    from kdlab.data.files import utf8_lines

    for lineno, line in enumerate(utf8_lines(path), 1):
        if line.strip() and json.loads(line).get("id") == utt_id:
            return lineno
    return "?"


def make_batches(records: list[dict], tokenizer: Any, cmvn: Any, max_frames: int) -> Any:
    """Frame-bucketed evaluation batches (no augmentation, fixed order)."""
    from kdlab.data.dataset import make_loader

    return make_loader(records, tokenizer, cmvn, max_frames=max_frames, train=False)


def audio_seconds(batch: dict) -> float:
    return float(batch["feat_lens"].sum()) * FRAME_SHIFT_S
