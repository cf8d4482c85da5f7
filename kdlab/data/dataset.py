"""Utterance dataset, length-bucketed batching by total frames, collation into the batch dict.

A batch (docs/ARCHITECTURE.md)::

    ids        list[str]
    texts      list[str]        normalised transcripts (what the tokenizer encodes; used as references)
    feats      (B, T, 80)       CMVN-normalised log-mel fbank (+ SpecAugment in training)
    feat_lens  (B,) int64
    tokens     (B, L) int64     padded with IGNORE_ID
    token_lens (B,) int64
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from kdlab.data.audio import AudioError
from kdlab.data.features import (
    SPEEDS,
    FbankConfig,
    FeatureCache,
    GlobalCMVN,
    SpecAugConfig,
    SpecAugment,
    compute_fbank,
    num_frames,
    speed_perturb,
)
from kdlab.data.manifest import SkipReport
from kdlab.data.tokenizer import Tokenizer, normalize_text
from kdlab.data.voice_aug import VoiceAugConfig
from kdlab.data.voice_aug import apply as apply_voice_aug
from kdlab.tokens import IGNORE_ID

Manifest = str | Path | Sequence[dict]


def _records(manifest: Manifest) -> list[dict]:
    if isinstance(manifest, (str, Path)):
        from kdlab.data.manifest import read_manifest

        return read_manifest(manifest)
    return list(manifest)


def _item_seed(seed: int, epoch: int, index: int) -> int:
    """A distinct, reproducible generator seed per (seed, epoch, utterance index)."""
    return ((seed * 1_000_003 + epoch) * 1_000_003 + index) % (2**63 - 1)


class UtteranceFeatures:
    """Loads audio and computes (or fetches cached) raw fbank for a manifest record at a speed factor."""

    def __init__(self, cache_dir: str | Path | None = None, fbank: FbankConfig | None = None,
                 dither: float = 0.0) -> None:
        self.fbank = fbank or FbankConfig()
        if dither > 0 and cache_dir is not None:
            raise ValueError("dither > 0 makes features random, so they cannot be cached: "
                             "set dither=0 or cache_dir=None")
        self.cache = FeatureCache(cache_dir, self.fbank) if cache_dir is not None else None
        self.dither = dither

    def __call__(self, rec: dict, speed: float = 1.0) -> torch.Tensor:
        """Raw log-mel fbank (T, D) of one record."""
        if self.cache is None:
            return self._compute(rec, speed)
        return self.cache.get_or_compute(rec["id"], speed, lambda: self._compute(rec, speed), rec["path"])

    def _compute(self, rec: dict, speed: float) -> torch.Tensor:
        from kdlab.data.audio import load_audio

        try:
            wave = load_audio(rec["path"], self.fbank.sample_rate)  # (N,)
        except AudioError as err:
            raise AudioError(f"utterance {rec['id']}: {err}", err.reason) from err
        wave = speed_perturb(wave, speed, self.fbank.sample_rate)
        feats = compute_fbank(wave, self.fbank, self.dither, name=f"{rec['id']} ({rec['path']})")  # (T, D)
        if not torch.isfinite(feats).all():
            raise AudioError(f"utterance {rec['id']}: {rec['path']}: non-finite features", "bad_samples")
        return feats


def fit_cmvn(manifest: Manifest, cache_dir: str | Path | None = None, fbank: FbankConfig | None = None,
             report: SkipReport | None = None) -> GlobalCMVN:
    """Global CMVN statistics over every utterance of a (training) manifest, without augmentation.

    An utterance whose audio cannot be decoded or has bad samples is left out and, when ``report`` is
    given, counted there (otherwise its :class:`AudioError` is raised).
    """
    feats = UtteranceFeatures(cache_dir, fbank)

    def usable() -> Iterator[torch.Tensor]:
        for rec in _records(manifest):
            try:
                yield feats(rec)  # (T, D)
            except AudioError as err:
                if report is None:
                    raise
                report.add(rec, err.reason, str(err))

    return GlobalCMVN.fit(usable())


class ASRDataset(Dataset):
    """Manifest records → dicts with ``id``, ``text``, ``feats`` (T, D) and ``tokens`` (L,).

    In training, speed perturbation (factor from {0.9, 1.0, 1.1}), voice and channel augmentation
    (``voice_aug.py``, on the raw fbank) and SpecAugment are drawn from a generator
    seeded by (seed, epoch, index): the same seed and epoch give the same features, whatever the worker.
    With ``skip_bad``, an utterance whose audio fails to decode gives ``{"id", "bad": skip dict}`` instead
    of raising :class:`AudioError`; :func:`collate` leaves it out of the batch and lists it under ``bad``.
    """

    def __init__(self, manifest: Manifest, tokenizer: Tokenizer, cmvn: GlobalCMVN | None,
                 cache_dir: str | Path | None = None, train: bool = False,
                 specaug: SpecAugConfig | None = None, speed_perturb: bool = False, seed: int = 0,
                 fbank: FbankConfig | None = None, dither: float = 0.0, skip_bad: bool = False,
                 voice_aug: VoiceAugConfig | None = None) -> None:
        self.records = _records(manifest)
        if not self.records:
            raise ValueError(f"manifest {manifest if isinstance(manifest, (str, Path)) else ''} is empty")
        self.tokenizer, self.cmvn, self.train, self.seed = tokenizer, cmvn, train, seed
        self.features = UtteranceFeatures(cache_dir, fbank, dither if train else 0.0)
        self.specaug = SpecAugment(specaug) if (train and specaug is not None) else None
        self.voice_aug = voice_aug if train else None
        self.speeds = SPEEDS if (train and speed_perturb) else (1.0,)
        self.skip_bad = skip_bad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def frame_lengths(self) -> list[int]:
        """Upper estimates of each utterance's frame count from manifest durations (for batching)."""
        slowest = min(self.speeds)
        sr = self.features.fbank.sample_rate
        return [num_frames(math.ceil(float(r["duration"]) * sr / slowest), self.features.fbank)
                for r in self.records]

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        gen = torch.Generator().manual_seed(_item_seed(self.seed, self.epoch, index))
        speed = self.speeds[int(torch.randint(len(self.speeds), (1,), generator=gen))]
        try:
            feats = self.features(rec, speed)  # (T, D)
        except AudioError as err:
            if not self.skip_bad:
                raise
            return {"id": rec["id"], "bad": {"id": rec["id"], "path": rec["path"], "reason": err.reason,
                                             "detail": str(err)}}
        if self.voice_aug is not None:
            feats = apply_voice_aug(feats, self.voice_aug, gen, self.features.fbank.sample_rate)
        if self.cmvn is not None:
            feats = self.cmvn(feats)
        if self.specaug is not None:
            feats = self.specaug.augment_one(feats, gen)
        text = normalize_text(rec["text"], self.tokenizer.lang)
        tokens = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)  # (L,)
        return {"id": rec["id"], "text": text, "feats": feats, "tokens": tokens, "speed": speed}


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of dataset items into the batch dict of docs/ARCHITECTURE.md.

    Items that failed to decode (``bad``, see :class:`ASRDataset`) are left out and listed under the
    batch's ``bad`` key; when every item failed, the batch has empty ``ids`` and no tensors.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    bad = [it["bad"] for it in items if "bad" in it]
    if bad:
        good = [it for it in items if "bad" not in it]
        return {**(collate(good) if good else {"ids": [], "texts": []}), "bad": bad}
    feat_lens = torch.tensor([it["feats"].shape[0] for it in items], dtype=torch.long)
    token_lens = torch.tensor([it["tokens"].numel() for it in items], dtype=torch.long)
    dim = items[0]["feats"].shape[1]
    feats = torch.zeros(len(items), int(feat_lens.max()), dim)  # (B, T, D)
    tokens = torch.full((len(items), max(int(token_lens.max()), 1)), IGNORE_ID, dtype=torch.long)  # (B, L)
    for b, it in enumerate(items):
        if it["feats"].shape[1] != dim:
            raise ValueError(f"{it['id']}: {it['feats'].shape[1]}-dim features in a batch of {dim}-dim ones")
        feats[b, : feat_lens[b]] = it["feats"]
        tokens[b, : token_lens[b]] = it["tokens"]
    return {"ids": [it["id"] for it in items], "texts": [it["text"] for it in items], "feats": feats,
            "feat_lens": feat_lens, "tokens": tokens, "token_lens": token_lens}


class FrameBatchSampler(Sampler[list[int]]):
    """Batches of similar-length utterances with B × max(T) ≤ ``max_frames`` (padded frames).

    Utterances are sorted by length (ties broken at random when shuffling) and cut greedily into batches;
    the batch order is shuffled per epoch with ``seed + epoch``. An utterance longer than ``max_frames``
    forms a batch of its own. For DDP, every rank gets the same number of batches: the batch list is padded
    by repeating its first batches (or, with ``drop_last``, cut) to a multiple of ``world_size`` and rank r
    takes batches r, r + world_size, ...
    """

    def __init__(self, lengths: Sequence[int], max_frames: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1) -> None:
        if max_frames <= 0:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.lengths = [int(n) for n in lengths]
        self.max_frames, self.shuffle, self.seed, self.drop_last = max_frames, shuffle, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        order = list(range(len(self.lengths)))
        if self.shuffle:
            rng.shuffle(order)
        order.sort(key=lambda i: self.lengths[i])  # stable: shuffled ties stay shuffled
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:  # lengths ascending, so the newest item sets the batch's max T
            if current and (len(current) + 1) * self.lengths[i] > self.max_frames:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def _sharded(self) -> list[list[int]]:
        batches = self._all_batches()
        extra = len(batches) % self.world_size
        if extra and self.drop_last:
            batches = batches[: len(batches) - extra]
        elif extra:
            batches += [batches[k % len(batches)] for k in range(self.world_size - extra)]
        return batches[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._sharded())

    def __len__(self) -> int:
        return len(self._sharded())


def make_loader(manifest: Manifest, tokenizer: Tokenizer, cmvn: GlobalCMVN | None, max_frames: int,
                train: bool = False, cache_dir: str | Path | None = None,
                specaug: SpecAugConfig | None = None, speed_perturb: bool = False, seed: int = 0,
                num_workers: int = 0, voice_aug: VoiceAugConfig | None = None, rank: int = 0,
                world_size: int = 1, shuffle: bool | None = None,
                drop_last: bool = False, skip_bad: bool = False) -> DataLoader:
    """A DataLoader over frame-bucketed batches; call ``set_epoch(loader, e)`` before each epoch.

    Shuffling defaults to ``train``. Augmentations only act when ``train`` is True. ``skip_bad``: see
    :class:`ASRDataset`.
    """
    ds = ASRDataset(manifest, tokenizer, cmvn, cache_dir=cache_dir, train=train, specaug=specaug,
                    speed_perturb=speed_perturb, seed=seed, skip_bad=skip_bad, voice_aug=voice_aug)
    sampler = FrameBatchSampler(ds.frame_lengths(), max_frames, shuffle=train if shuffle is None else shuffle,
                                seed=seed, drop_last=drop_last, rank=rank, world_size=world_size)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reseed a ``make_loader`` loader's batch order and augmentations for ``epoch``."""
    loader.batch_sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
