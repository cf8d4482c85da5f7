"""Training: ``fit`` runs a whole experiment in a run folder; single process or ``torchrun`` DDP.

Per epoch: train (eq 13: L_jca of eq 6 plus KD terms when ``kd`` is enabled), validate (dev loss and token
accuracy), write ``epoch-N.pt`` atomically, append ``metrics.csv``. At the end the last N checkpoints are
averaged into ``avg-N.pt`` (paper Sec. 4.2: N = 5). ``--resume`` continues from the newest checkpoint
with the same later losses as an uninterrupted run (model, optimiser, scheduler, scaler and every RNG
state are restored; the sampler's order depends on the epoch number only).

One training per run folder: rank 0 holds the folder's lock (``kdlab.data.locks``) from before the folder is
prepared until the run ends, so a second ``kdlab train --out`` on it is refused instead of interleaving
``metrics.csv`` and removing the first run's in-flight checkpoint.

Public API: :func:`fit`, :func:`compute_loss`, :func:`train_one_epoch`, :func:`validate`,
:func:`benchmark_throughput`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch

from kdlab.checkpoint import (
    CheckpointError,
    average_run,
    check_tokenizer,
    epoch_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_stale_temps,
    rng_state,
    save_atomic,
    set_rng_state,
)
from kdlab.config import ExperimentConfig, resolve_model_config, to_dict
from kdlab.training.bench import benchmark_throughput
from kdlab.training.data import build_loader, set_loader_epoch
from kdlab.training.datacheck import record_failures, usable_data
from kdlab.training.logger import MetricsLogger
from kdlab.training.loop import TrainingDiverged, TrainState, compute_loss, train_one_epoch, validate
from kdlab.training.rundir import CMVN_FILE, TOKENIZER_DIR, prepare_run
from kdlab.training.runtime import (
    Runtime,
    autocast_dtype,
    make_scaler,
    seed_everything,
    set_deterministic,
    setup_runtime,
    teardown_runtime,
)
from kdlab.training.schedule import NoamSchedule, build_optimizer

__all__ = [
    "fit", "compute_loss", "train_one_epoch", "validate", "benchmark_throughput", "TrainingDiverged",
    "build_state",
]

EpochHook = Callable[[int, TrainState, dict], None]


def _barrier(rt: Runtime) -> None:
    if rt.distributed:
        torch.distributed.barrier()


def build_state(cfg: ExperimentConfig, run_dir: Path, rt: Runtime, vocab_size: int,
                train_records: list[dict] | None = None) -> TrainState:
    """Model (DDP-wrapped when distributed), optimiser, schedule, scaler, distiller and logger.

    ``train_records``: the usable training utterances (the distiller's N-best lists cover them); default:
    the whole training manifest."""
    from kdlab.models import build_model

    seed_everything(cfg.train.seed)  # same initial weights on every rank
    module = build_model(resolve_model_config(cfg.model), vocab_size, cfg.model.kind).to(rt.device)
    if cfg.train.init_from:
        from kdlab.data.tokenizer import load_tokenizer

        init = load_checkpoint(cfg.train.init_from)
        check_tokenizer(init, load_tokenizer(run_dir / TOKENIZER_DIR), cfg.train.init_from, run_dir / TOKENIZER_DIR)
        module.load_state_dict(init["model"])
    if cfg.train.init_encoder_from:
        _init_encoder(module, cfg.train.init_encoder_from, run_dir)
    model = module
    if rt.distributed:
        from torch.nn.parallel import DistributedDataParallel

        ids = [rt.device.index] if rt.device.type == "cuda" else None
        model = DistributedDataParallel(module, device_ids=ids,
                                        find_unused_parameters=cfg.train.find_unused_parameters)
    optimizer = build_optimizer(module.parameters(), cfg.train)
    amp = autocast_dtype(cfg.train.precision, rt.device, cfg.train.allow_cpu_autocast)
    return TrainState(
        model=model, module=module, optimizer=optimizer,
        scheduler=NoamSchedule(optimizer, cfg.train.lr, cfg.train.warmup_steps),
        scaler=make_scaler(rt.device, amp), rt=rt, cfg=cfg.train, amp_dtype=amp,
        distiller=_build_distiller(cfg, run_dir, rt, train_records or cfg.data.manifest("train")),
    )


def _init_encoder(module: torch.nn.Module, path: str, run_dir: Path) -> None:
    """Load only the ``encoder.*`` weights of checkpoint ``path`` (e.g. the AR teacher's encoder into a
    transducer); same tokenizer required, every encoder tensor must be present with the same shape."""
    from kdlab.config import ConfigError
    from kdlab.data.tokenizer import load_tokenizer

    init = load_checkpoint(path)
    check_tokenizer(init, load_tokenizer(run_dir / TOKENIZER_DIR), path, run_dir / TOKENIZER_DIR)
    weights = {k.removeprefix("encoder."): v for k, v in init["model"].items() if k.startswith("encoder.")}
    try:
        module.encoder.load_state_dict(weights)
    except RuntimeError as err:
        detail = next((line.strip() for line in str(err).splitlines()[1:] if line.strip()), str(err))
        raise ConfigError(f"train.init_encoder_from: {path}: its encoder does not fit the model's "
                          f"({detail})") from err


def _build_distiller(cfg: ExperimentConfig, run_dir: Path, rt: Runtime, train: list[dict] | str):
    """KD distiller (teacher + N-best cache over ``train``) when ``kd.enabled``; rank 0 builds any cache
    first."""
    if cfg.kd is None or not cfg.kd.enabled:
        return None
    from kdlab.kd import build_distiller

    distiller = None
    if rt.is_main:
        distiller = build_distiller(cfg.kd, run_dir, train, rt.device)
    _barrier(rt)
    if not rt.is_main:
        distiller = build_distiller(cfg.kd, run_dir, train, rt.device)
    return distiller


def _gather_rng(rt: Runtime) -> list:
    """Every rank's RNG state, gathered on all ranks (rank order)."""
    state = rng_state()
    if not rt.distributed:
        return [state]
    gathered: list = [None] * rt.world_size
    torch.distributed.all_gather_object(gathered, state)
    return gathered


def save_epoch(state: TrainState, cfg: ExperimentConfig, run_dir: Path, epoch: int, vocab_size: int,
               tokenizer_sha256: str) -> None:
    """Write ``epoch-<epoch>.pt`` (rank 0) holding everything ``--resume`` needs and the tokenizer's
    fingerprint."""
    rngs = _gather_rng(state.rt)
    if not state.rt.is_main:
        return
    ckpt = {
        "model": state.module.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "scaler": state.scaler.state_dict(),
        "epoch": epoch, "step": state.step, "bad_in_row": state.bad_in_row, "rng": rngs,
        "config": to_dict(cfg), "kind": cfg.model.kind, "vocab_size": vocab_size,
        "tokenizer_sha256": tokenizer_sha256,
    }
    if hasattr(state.distiller, "state_dict"):  # e.g. the RNG of the distiller's own random choices
        ckpt["distiller"] = state.distiller.state_dict()
    save_atomic(ckpt, run_dir / f"epoch-{epoch}.pt")
    prune_checkpoints(run_dir, cfg.train.keep_last)


def restore(state: TrainState, path: Path) -> int:
    """Load an epoch checkpoint into ``state``; returns its epoch number."""
    ckpt = load_checkpoint(path)  # on CPU; load_state_dict moves tensors to the parameters' device
    state.module.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    state.step, state.bad_in_row = int(ckpt["step"]), int(ckpt.get("bad_in_row", 0))
    rngs = ckpt["rng"]
    if "distiller" in ckpt and hasattr(state.distiller, "load_state_dict"):
        state.distiller.load_state_dict(ckpt["distiller"])
    if len(rngs) != state.rt.world_size:
        raise CheckpointError(f"{path}: saved by {len(rngs)} processes, resumed with {state.rt.world_size}")
    set_rng_state(rngs[state.rt.rank])
    return int(ckpt["epoch"])


def _resume_point(run_dir: Path, resume: bool) -> Path | None:
    ckpts = epoch_checkpoints(run_dir)
    if ckpts and not resume:
        raise FileExistsError(f"{run_dir}: already holds {ckpts[-1].name}; pass --resume or use a new --out")
    return ckpts[-1] if resume and ckpts else None


def fit(cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False,
        on_epoch_end: EpochHook | None = None) -> dict:
    """Train ``cfg`` in ``run_dir``; returns the last epoch's train/dev metrics and the averaged model path.

    Under ``torchrun`` every process calls ``fit``; only rank 0 writes files, holding the run folder's lock for
    the whole run (:func:`run_lock`). ``on_epoch_end(epoch, state, metrics)`` runs on every rank after each
    checkpoint is written (e.g. to simulate a crash in tests).
    """
    rt = setup_runtime(cfg.train)
    try:
        with run_lock(Path(run_dir), rt):
            return _fit(cfg, Path(run_dir), rt, resume, on_epoch_end)
    finally:
        teardown_runtime(rt)


def run_lock(run_dir: Path, rt: Runtime) -> contextlib.AbstractContextManager:
    """The writer's (rank 0's) exclusive lock of ``run_dir``: a second training in the same folder is refused
    at once with one line naming the holder's pid (:class:`kdlab.data.locks.FolderInUse`); a lock left by a
    killed run is taken over. Other ranks write nothing and take no lock."""
    from kdlab.data.locks import folder_lock

    return folder_lock(run_dir, "trains in") if rt.is_main else contextlib.nullcontext(run_dir)


def _fit(cfg: ExperimentConfig, run_dir: Path, rt: Runtime, resume: bool,
         on_epoch_end: EpochHook | None) -> dict:
    from kdlab.data.features import GlobalCMVN
    from kdlab.data.tokenizer import load_tokenizer, tokenizer_sha256

    set_deterministic(cfg.train.deterministic)
    start = _resume_point(run_dir, resume)
    if rt.is_main:
        prepare_run(cfg, run_dir)
        remove_stale_temps(run_dir)  # left by a save that a kill interrupted
    _barrier(rt)
    tokenizer, cmvn = load_tokenizer(run_dir / TOKENIZER_DIR), GlobalCMVN.load(run_dir / CMVN_FILE)
    fingerprint = tokenizer_sha256(tokenizer)
    data = usable_data(cfg, run_dir, tokenizer, main=rt.is_main)
    state = build_state(cfg, run_dir, rt, tokenizer.vocab_size, data["train"])
    if start is None:
        first = 1
        seed_everything(cfg.train.seed + rt.rank)  # dropout / masks / SpecAugment differ per rank
    else:
        first = restore(state, start) + 1
    state.logger = MetricsLogger(run_dir, active=rt.is_main, keep_until_epoch=first - 1 if start else None)
    train_loader = build_loader(cfg, data["train"], tokenizer, cmvn, rt, train=True)
    dev_loader = build_loader(cfg, data["dev"], tokenizer, cmvn, rt, train=False)
    result: dict = {}
    for epoch in range(first, cfg.train.epochs + 1):
        set_loader_epoch(train_loader, epoch)
        started = time.perf_counter()
        train_metrics = train_one_epoch(state, train_loader, epoch)
        train_s = time.perf_counter() - started
        dev = validate(state, dev_loader, seed=cfg.train.seed)
        _record_bad_items(state, run_dir)
        check_epoch(epoch, train_metrics, dev)
        result = {**train_metrics, **{f"dev_{k}": v for k, v in dev.items()}, "lr": state.scheduler.lr,
                  "train_s": train_s}
        state.logger.log("epoch", epoch, state.step, result)
        if rt.is_main:
            print(epoch_line(epoch, cfg.train.epochs, result), flush=True)
        save_epoch(state, cfg, run_dir, epoch, tokenizer.vocab_size, fingerprint)
        _barrier(rt)
        if on_epoch_end is not None:
            on_epoch_end(epoch, state, result)
    state.logger.close()
    if not result:  # resumed a finished run: report its last epoch row
        result = state.logger.last_row("epoch")
    if rt.is_main and cfg.train.average_last:
        n = min(cfg.train.average_last, len(epoch_checkpoints(run_dir)))
        result["averaged"] = str(average_run(run_dir, n)) if n else None
    return result


def _record_bad_items(state: TrainState, run_dir: Path) -> None:
    """Utterances whose audio failed to decode this epoch (every rank's) → the run's data report."""
    items, state.bad_items = state.bad_items, []
    if state.rt.distributed:
        gathered: list = [None] * state.rt.world_size
        torch.distributed.all_gather_object(gathered, items)
        items = [it for rank_items in gathered for it in rank_items]
    if state.rt.is_main:
        record_failures(run_dir, items)


def check_epoch(epoch: int, train_metrics: dict, dev: dict) -> None:
    """Stop (before any checkpoint of the epoch is written) when no batch trained or the dev loss is not
    finite: the model would be useless, and averaging it would hide that."""
    if "loss" not in train_metrics:
        raise TrainingDiverged(f"epoch {epoch}: every training batch ({train_metrics.get('skipped', 0):.0f}) "
                               "had a non-finite loss and was skipped — check the data (kdlab data check "
                               "--deep) or lower train.lr")
    if not math.isfinite(dev.get("loss", math.nan)):
        raise TrainingDiverged(f"epoch {epoch}: the dev loss is {dev.get('loss', 'missing')} — the model "
                               "has diverged or the dev data is bad (kdlab data check --deep)")


def epoch_line(epoch: int, epochs: int, result: dict) -> str:
    """One log line per epoch (progress bars redraw in place, which a log file cannot show)."""
    keys = ("loss", "acc", "dev_loss", "dev_loss_ctc", "dev_loss_rnnt", "dev_acc")
    shown = " ".join(f"{k} {result[k]:.4g}" for k in keys if isinstance(result.get(k), (int, float)))
    return f"epoch {epoch}/{epochs}: {shown} ({result.get('train_s', 0.0):.0f} s)"

