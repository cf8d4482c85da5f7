"""One training epoch and one validation pass (icefall-style ``compute_loss`` / ``train_one_epoch``).

Training objective (eq 13): ``L = L_jca(student) + KD terms``, where ``L_jca`` is the model's own joint
CTC/attention loss (eq 6, ``out["loss"]``) and the KD terms come from a distiller (kdlab.kd) when set.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from kdlab.config import TrainConfig
from kdlab.errors import UserError
from kdlab.training.logger import MetricsLogger
from kdlab.training.runtime import Runtime, all_reduce_min, all_reduce_sum, autocast
from kdlab.training.schedule import NoamSchedule

# the KD term of eq 13 for one batch: (model, batch, outputs) -> (loss, metrics); kdlab.kd.Distiller is one
KDTerm = Callable[[nn.Module, dict, dict], tuple[torch.Tensor, dict]]


class TrainingDiverged(UserError, RuntimeError):
    """Too many consecutive non-finite losses."""


@dataclass
class TrainState:
    """Everything one epoch needs; ``step`` counts optimiser steps over the whole run."""

    model: nn.Module  # the module called for the forward pass (the DDP wrapper when distributed)
    module: nn.Module  # the bare model (weights, checkpoints, extra calls by the distiller)
    optimizer: torch.optim.Optimizer
    scheduler: NoamSchedule
    scaler: torch.amp.GradScaler
    rt: Runtime
    cfg: TrainConfig
    amp_dtype: torch.dtype | None = None
    distiller: KDTerm | None = None
    logger: MetricsLogger | None = None
    step: int = 0
    bad_in_row: int = 0
    bad_items: list = field(default_factory=list)  # utterances whose audio failed to decode (+ "split")


@dataclass
class Averager:
    """Weighted running means of named metrics."""

    sums: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)

    def add(self, metrics: dict[str, float], weight: float = 1.0) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * weight
            self.weights[k] = self.weights.get(k, 0.0) + weight

    def reduce(self, rt: Runtime) -> None:
        """Sum over DDP ranks (every rank must hold the same metric names)."""
        keys = sorted(self.sums)
        if rt.distributed:  # union of names: a rank may have seen no batch at all
            import torch.distributed as dist

            gathered: list = [None] * rt.world_size
            dist.all_gather_object(gathered, keys)
            keys = sorted(set().union(*gathered))
        flat = [self.sums.get(k, 0.0) for k in keys] + [self.weights.get(k, 0.0) for k in keys]
        totals = all_reduce_sum(flat, rt)
        self.sums = dict(zip(keys, totals[: len(keys)], strict=True))
        self.weights = dict(zip(keys, totals[len(keys):], strict=True))

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / self.weights[k] for k in self.sums if self.weights[k] > 0}


def to_device(batch: dict, device: torch.device) -> dict:
    """Move a batch's tensors to ``device`` (lists such as ids and texts stay)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def compute_loss(model: nn.Module, batch: dict, kd: KDTerm | None = None,
                 student: nn.Module | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch (eq 13) and its metrics as floats.

    ``model`` is called as ``model(feats, feat_lens, tokens, token_lens)`` and returns ``loss`` (eq 6),
    ``loss_ctc``, ``loss_att`` and ``acc``. ``kd`` (a distiller holding the teacher) adds its KD terms;
    it receives ``student`` (the bare model; defaults to ``model``) for any extra forward calls.
    """
    out = model(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
    loss = out["loss"]
    metrics = {"loss_jca": loss, "acc": out.get("acc")}
    metrics.update({k: v for k, v in out.items() if k.startswith("loss_")})  # loss_ctc, loss_att, loss_inter…
    if kd is not None:
        kd_loss, kd_metrics = kd(student if student is not None else model, batch, out)
        loss = loss + kd_loss
        metrics["loss_kd"] = kd_loss
        metrics.update(kd_metrics)
    metrics["loss"] = loss
    return loss, {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in metrics.items()
                  if v is not None}


def _all_finite(loss: torch.Tensor | None, rt: Runtime) -> bool:
    """True when the loss is finite on every rank (all ranks then skip or step together); ``None``: this
    rank's batch was empty (every utterance in it failed to decode)."""
    bad = 0.0 if loss is not None and bool(torch.isfinite(loss.detach())) else 1.0
    return all_reduce_sum([bad], rt)[0] == 0.0


def _average_grads(module: nn.Module, rt: Runtime) -> None:
    """Manual gradient all-reduce, for a step whose last backward ran under ``no_sync``."""
    if not rt.distributed:
        return
    import torch.distributed as dist

    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= rt.world_size


def _average_buffers(module: nn.Module, rt: Runtime) -> None:
    """Average floating buffers (BatchNorm running statistics) over ranks: DDP syncs them only at the
    start of each forward, so after the last step every rank would otherwise hold its own values."""
    if not rt.distributed:
        return
    import torch.distributed as dist

    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf)
            buf /= rt.world_size


def optimizer_step(state: TrainState) -> float:
    """Unscale, clip, step, zero; returns the gradient norm (non-finite norm: the step is skipped)."""
    cfg = state.cfg
    state.scaler.unscale_(state.optimizer)
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
    norm = float(torch.nn.utils.clip_grad_norm_(state.module.parameters(), max_norm))
    if math.isfinite(norm) or state.scaler.is_enabled():  # the fp16 scaler skips inf steps itself
        state.scaler.step(state.optimizer)
        state.scaler.update()
    state.optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    state.step += 1
    return norm


def buffer_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the floating buffers (BatchNorm running statistics): a train-mode forward pass updates
    them even when its loss turns out non-finite, so a skipped batch restores them."""
    return {name: buf.detach().clone() for name, buf in module.named_buffers() if buf.is_floating_point()}


def restore_buffers(module: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Put back the buffers of :func:`buffer_snapshot`."""
    buffers = dict(module.named_buffers())
    with torch.no_grad():
        for name, saved in snapshot.items():
            buffers[name].copy_(saved)


def _skip_batch(state: TrainState, batch: dict, epoch: int) -> None:
    state.bad_in_row += 1
    if state.bad_in_row >= state.cfg.max_bad_steps:
        raise TrainingDiverged(
            f"epoch {epoch}: {state.bad_in_row} non-finite losses in a row (train.max_bad_steps="
            f"{state.cfg.max_bad_steps}); last batch: {', '.join(batch['ids'][:4])}… — lower train.lr, "
            "check the data, or use fp32")


def interactive() -> bool:
    """Progress bars only on a terminal or in a notebook; a log file gets fit's one line per epoch."""
    if sys.stderr.isatty():
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # None outside a running kernel/shell
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def train_one_epoch(state: TrainState, loader, epoch: int) -> dict[str, float]:
    """Train over ``loader`` once; returns epoch means (all ranks) plus ``skipped``: batches whose loss
    (or, in fp32, whose gradient) was not finite and so did not update the model — neither its
    parameters nor its buffers (BatchNorm statistics are put back as they were before the batch)."""
    from tqdm.auto import tqdm

    cfg, rt = state.cfg, state.rt
    state.model.train()
    n_batches = all_reduce_min(len(loader), rt)  # equal step counts on every rank
    epoch_avg, window, skipped, window_skipped, micro = Averager(), Averager(), 0, 0, 0
    bar = tqdm(total=n_batches, desc=f"epoch {epoch}", leave=False,
               disable=not (rt.is_main and cfg.progress and interactive()))
    for i, batch in enumerate(loader):
        if i >= n_batches:
            break
        batch = to_device(batch, rt.device)
        state.bad_items += [{**b, "split": "train"} for b in batch.get("bad", [])]
        before = buffer_snapshot(state.module)
        if micro == 0:
            step_start = before  # buffers before the first batch of this optimiser step
        loss = None
        if batch["ids"]:
            with autocast(rt.device, state.amp_dtype):
                loss, metrics = compute_loss(state.model, batch, state.distiller, state.module)
        bar.update(1)
        if not _all_finite(loss, rt):
            restore_buffers(state.module, before)
            skipped += 1
            window_skipped += 1
            if loss is not None:
                _skip_batch(state, batch, epoch)
            continue
        state.bad_in_row = 0
        micro += 1
        sync = micro == cfg.accum_grad or i == n_batches - 1
        no_sync = rt.distributed and not sync and hasattr(state.model, "no_sync")
        with state.model.no_sync() if no_sync else contextlib.nullcontext():
            state.scaler.scale(loss / cfg.accum_grad).backward()
        n_utts = float(len(batch["ids"]))
        epoch_avg.add(metrics, n_utts)
        window.add(metrics, n_utts)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}")
        if sync:
            norm = optimizer_step(state)
            if not math.isfinite(norm) and not state.scaler.is_enabled():  # fp32: the update was dropped
                restore_buffers(state.module, step_start)
                skipped, window_skipped = skipped + 1, window_skipped + 1
            window.add({"grad_norm": norm})
            micro = 0
            if state.step % cfg.log_interval == 0:
                _log_window(state, epoch, window, window_skipped)
                window, window_skipped = Averager(), 0
    if micro:  # the batch meant to close the last step was skipped
        _average_grads(state.module, rt)
        optimizer_step(state)
    bar.close()
    _average_buffers(state.module, rt)
    epoch_avg.reduce(rt)
    result = epoch_avg.means()
    result["skipped"] = float(skipped)  # ranks skip together, so every rank counts the same
    return result


def _log_window(state: TrainState, epoch: int, window: Averager, skipped: int) -> None:
    """A per-step row: lr after this step, means since the last row, batches skipped since then."""
    if state.logger is not None:
        row = {"lr": state.scheduler.lr, **window.means(), "skipped": skipped}
        state.logger.log("step", epoch, state.step, row)


@torch.no_grad()
def validate(state: TrainState, loader, seed: int = 0) -> dict[str, float]:
    """Dev-set L_jca (eq 6), its CTC / attention parts and token accuracy, averaged over all ranks.

    Random choices inside the model (Mask-CTC's masks) use a fixed seed in a forked RNG, so the dev
    loss is comparable across epochs and validation leaves the training RNG untouched.
    """
    module = state.module
    module.eval()
    avg = Averager()
    devices = [state.rt.device] if state.rt.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for batch in loader:
            state.bad_items += [{**b, "split": "dev"} for b in batch.get("bad", [])]
            if not batch["ids"]:
                continue
            batch = to_device(batch, state.rt.device)
            with autocast(state.rt.device, state.amp_dtype):
                _, m = compute_loss(module, batch)
            n_utts, n_tokens = float(len(batch["ids"])), float(batch["token_lens"].sum())
            avg.add({k: v for k, v in m.items() if k != "acc"}, n_utts)
            if "acc" in m:
                avg.add({"acc": m["acc"]}, n_tokens)
    avg.reduce(state.rt)
    module.train()
    return avg.means()
