"""Throughput of a run folder's own training step (``kdlab bench train --run``).

Where :func:`kdlab.training.bench.benchmark_throughput` times a model preset on any manifest, this times
exactly what ``kdlab train`` would run in that folder: its config, tokenizer, CMVN, batches (with the run's
augmentation) and, for a KD run, the whole objective of eq 13 with the live teacher's frame-level terms
(eq 7, 11) and the cached N-best sequence terms (eq 8, 9, 12). Nothing in the folder is written, except
the teacher's N-best cache when a KD run does not have it yet (training would write the same).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from kdlab.errors import UserError
from kdlab.training.bench import time_steps


def load_run_config(run_dir: Path):
    """The config a run folder was trained with (``config.yaml``); a clear error when it is not a run."""
    from kdlab.config import load_config
    from kdlab.training.rundir import CMVN_FILE, CONFIG_FILE, TOKENIZER_DIR

    path = run_dir / CONFIG_FILE
    missing = [p for p in (path, run_dir / CMVN_FILE, run_dir / TOKENIZER_DIR) if not p.exists()]
    if missing:
        raise UserError(f"{run_dir}: not a prepared run folder (missing {', '.join(p.name for p in missing)})")
    return load_config(path)


def benchmark_run(run_dir: str | Path, steps: int = 10, warmup: int = 2) -> dict:
    """Time ``steps`` optimiser steps of the run in ``run_dir`` after ``warmup`` untimed ones.

    Batches are built before timing (features, augmentation, N-best lookup excluded). Returns the same
    fields as ``benchmark_throughput`` plus ``run``, ``kind`` and ``kd_terms`` (the active KD terms).
    """
    from kdlab.data.features import GlobalCMVN
    from kdlab.data.tokenizer import load_tokenizer
    from kdlab.training.data import build_loader, set_loader_epoch
    from kdlab.training.datacheck import usable_data
    from kdlab.training.fit import build_state
    from kdlab.training.rundir import CMVN_FILE, TOKENIZER_DIR
    from kdlab.training.runtime import Runtime, pick_device

    if steps < 1:
        raise ValueError(f"benchmark_run: steps must be >= 1, got {steps}")
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    tokenizer, cmvn = load_tokenizer(run_dir / TOKENIZER_DIR), GlobalCMVN.load(run_dir / CMVN_FILE)
    rt = Runtime(pick_device(cfg.train.device))
    records = usable_data(cfg, run_dir, tokenizer, main=False)["train"]
    state = build_state(cfg, run_dir, rt, tokenizer.vocab_size, records)
    loader = build_loader(cfg, records, tokenizer, cmvn, rt, train=True)
    set_loader_epoch(loader, 1)
    batches = list(itertools.islice(loader, warmup + steps))
    if len(batches) <= warmup:
        raise UserError(f"{run_dir}: the training set gives only {len(batches)} batches, "
                        f"fewer than {warmup} warm-up steps and one timed step")
    state.model.train()
    kd_terms = sorted(k for k, w in getattr(state.distiller, "weights", {}).items() if w)
    timing = time_steps(state.model, state.optimizer, batches, warmup, rt.device, state.distiller, state.module)
    return {"run": str(run_dir), "kind": cfg.model.kind, "kd_terms": kd_terms, "device": str(rt.device),
            **timing, "params": sum(p.numel() for p in state.module.parameters())}
