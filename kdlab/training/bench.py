"""Training throughput benchmark (``kdlab bench train``): seconds of audio trained per second."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from kdlab.data.features import FRAME_SHIFT_S


def _manifest_lang(manifest: Path) -> str:
    info = manifest.parent / "info.json"
    if info.is_file():
        data = json.loads(info.read_text())
        return data.get("language") or data.get("lang") or "en"
    return "en"


def _model_config(cfg_or_preset: Any):
    from kdlab.models.config import ModelConfig, get_preset

    if isinstance(cfg_or_preset, ModelConfig):
        return cfg_or_preset
    return get_preset(str(cfg_or_preset))


def _batches(manifest: Path, n: int, max_frames: int) -> tuple[list[dict], int]:
    """The first ``n`` training batches in memory (cycled if the set is small), and the vocab size."""
    from kdlab.data.dataset import make_loader
    from kdlab.data.features import GlobalCMVN
    from kdlab.data.manifest import read_manifest
    from kdlab.data.tokenizer import train_tokenizer

    texts = [u["text"] for u in read_manifest(manifest)]
    tokenizer = train_tokenizer(texts, _manifest_lang(manifest))
    identity = GlobalCMVN(torch.zeros(80), torch.ones(80))  # normalisation does not change the cost
    loader = make_loader(manifest, tokenizer, identity, max_frames=max_frames, train=True)
    batches: list[dict] = []
    while len(batches) < n:
        batches.extend(loader)
        if not batches:
            raise ValueError(f"{manifest}: no batches (empty manifest or max_frames={max_frames} too small)")
    return batches[:n], tokenizer.vocab_size


def benchmark_throughput(cfg_or_preset: Any, kind: str, manifest: str | Path, steps: int = 10,
                         device: str | torch.device = "cpu", max_frames: int = 8000, warmup: int = 2) -> dict:
    """Time ``steps`` optimiser steps (forward, backward, Adam) after ``warmup`` untimed ones.

    Batches are loaded before timing, so only model compute is measured. Returns
    ``utt_sec_per_sec`` (seconds of audio per wall second), ``frames_per_sec`` (fbank frames per second),
    ``utts_per_sec``, totals and the parameter count.
    """
    from kdlab.models import build_model

    if steps < 1:
        raise ValueError(f"benchmark_throughput: steps must be >= 1, got {steps}")
    device = torch.device(device)
    batches, vocab = _batches(Path(manifest), warmup + steps, max_frames)
    model = build_model(_model_config(cfg_or_preset), vocab, kind).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    return {"kind": kind, "device": str(device), **time_steps(model, optimizer, batches, warmup, device),
            "params": sum(p.numel() for p in model.parameters())}


def time_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batches: list[dict], warmup: int,
               device: torch.device, kd: Any = None, student: torch.nn.Module | None = None) -> dict:
    """One optimiser step (``compute_loss``: eq 6, plus the KD terms of eq 13 when ``kd`` is given) per
    batch, timing all but the first ``warmup``; batches are moved to ``device`` before timing. Returns the
    timed ``steps``, ``wall_s``, ``step_s``, the utterance, frame and audio totals and their rates
    (``utt_sec_per_sec``: seconds of audio per wall second)."""
    from kdlab.training.loop import compute_loss, to_device

    def step(batch: dict) -> None:
        loss, _ = compute_loss(model, batch, kd, student)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    batches = [to_device(b, device) for b in batches]
    timed = batches[warmup:]
    if not timed:
        raise ValueError(f"time_steps: {len(batches)} batches leave none to time after {warmup} warm-up steps")
    for batch in batches[:warmup]:
        step(batch)
    _sync(device)
    start = time.perf_counter()
    for batch in timed:
        step(batch)
    _sync(device)
    wall = time.perf_counter() - start
    frames = sum(int(b["feat_lens"].sum()) for b in timed)
    utts = sum(len(b["ids"]) for b in timed)
    audio_s = frames * FRAME_SHIFT_S
    return {
        "steps": len(timed), "wall_s": wall, "step_s": wall / len(timed), "utts": utts, "frames": frames,
        "audio_s": audio_s, "utt_sec_per_sec": audio_s / wall, "frames_per_sec": frames / wall,
        "utts_per_sec": utts / wall,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
