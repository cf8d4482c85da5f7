"""Evaluation sets for the decode / align / bench commands: resolve ``test|dev|PATH.jsonl``, batch them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FRAME_SHIFT_S = 0.01  # fbank frame shift (10 ms); audio seconds = feature frames × shift


class SetError(ValueError):
    """An evaluation set cannot be found or read; the message names it."""


def resolve_set(name: str, exp_cfg: Any) -> Path:
    """``test``/``dev`` -> the run's corpus manifest; anything else is a manifest path."""
    if name in ("test", "dev"):
        data = exp_cfg.data
        explicit = getattr(data, name, None)
        if explicit:
            path = Path(explicit)
        elif data.corpus:
            path = Path(data.corpus) / f"{name}.jsonl"
        else:
            raise SetError(f"--set {name}: the run's config has no data.corpus; pass a manifest path instead")
    else:
        path = Path(name)
    if not path.is_file():
        raise SetError(f"--set {name}: manifest {path} not found")
    return path


def load_records(path: Path, limit: int | None = None, ids: list[str] | None = None) -> list[dict]:
    """Manifest records (paths made absolute), optionally the first ``limit`` or only ``ids``."""
    from kdlab.data.manifest import read_manifest

    records = read_manifest(path)
    if ids is not None:
        by_id = {r["id"]: r for r in records}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise SetError(f"{path}: utterance id(s) not in the manifest: {', '.join(missing[:5])}")
        records = [by_id[i] for i in ids]
    if limit is not None:
        records = records[:limit]
    if not records:
        raise SetError(f"{path}: no utterances to decode")
    return records


def make_batches(records: list[dict], tokenizer: Any, cmvn: Any, max_frames: int) -> Any:
    """Frame-bucketed evaluation batches (no augmentation, fixed order)."""
    from kdlab.data.dataset import make_loader

    return make_loader(records, tokenizer, cmvn, max_frames=max_frames, train=False)


def audio_seconds(batch: dict) -> float:
    return float(batch["feat_lens"].sum()) * FRAME_SHIFT_S
