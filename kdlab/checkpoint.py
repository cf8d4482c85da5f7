"""Checkpoints: atomic writes, safe loads (``weights_only=True``), RNG states, averaging, model loading.

A checkpoint is a plain dict of tensors, dicts, lists, numbers and strings, so that
``torch.load(..., weights_only=True)`` can read it and nothing in it can run code on load::

    model      state dict             optimizer / scheduler / scaler   state dicts (epoch checkpoints)
    epoch      int                    step        optimiser steps so far
    rng        dict of tensors        config      the ExperimentConfig as a dict
    kind       "ar" | "maskctc"       vocab_size  int
    tokenizer_sha256  the fingerprint of the run's tokenizer (checked wherever the checkpoint meets one)

Run folder layout: ``config.yaml``, ``tokenizer/``, ``cmvn.json``, ``epoch-N.pt``, ``avg-N.pt``,
``metrics.csv``.
"""

from __future__ import annotations

import hashlib
import pickle
import random
import re
from pathlib import Path
from typing import Any

import torch

from kdlab.data.files import atomic_file
from kdlab.errors import UserError

EPOCH_RE = re.compile(r"^epoch-(\d+)\.pt$")
PRETRAINED_PREFIX = "pretrained:"  # pretrained:<corpus>/<name> names a shipped model (kdlab.pretrained.store)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing, unsafe or malformed; the message names the file."""



def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (a checkpoint's identity: N-best caches, model cards)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()

def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` atomically (:func:`kdlab.data.files.atomic_file`).

    A crash at any point leaves either the previous file or the new one under ``path``, never a
    partial file; the temp file is removed on failure, and one left by a killed process is removed by
    the next save of the same file. The file gets the mode the umask gives new files (e.g. 0644). A write
    that fails (a full disk, ``ENOSPC``) raises a one-line :class:`CheckpointError`.
    """
    path = Path(path)
    remove_stale_temps(path.parent, path.name)
    try:
        with atomic_file(path, "wb") as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as err:  # a full disk or quota: one line, not the writer's chain of errors
        cause = _os_error(err)
        if cause is None:
            raise
        raise CheckpointError(f"{path}: cannot write the checkpoint ({cause.strerror or cause}); "
                              "the previous file, if any, is unchanged") from None


def _os_error(err: BaseException | None) -> OSError | None:
    """The first OSError in ``err``'s chain of contexts (torch's zip writer answers a failed write with a
    RuntimeError raised while handling it), or None."""
    while err is not None:
        if isinstance(err, OSError):
            return err
        err = err.__cause__ or err.__context__
    return None


def remove_stale_temps(folder: str | Path, name: str = "*.pt") -> list[Path]:
    """Delete the temp files (``.<name>.<random>.tmp``) that a killed :func:`save_atomic` left in ``folder``;
    returns them. Only one process saves into a run folder, so any such file is an orphan."""
    stale = sorted(Path(folder).glob(f".{name}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def resolve_checkpoint_path(path: str | Path) -> Path:
    """The file a checkpoint argument names: ``pretrained:<corpus>/<name>`` gives that shipped model's
    ``model.pt`` (sha256 checked against its card), anything else is a path."""
    if isinstance(path, str) and path.startswith(PRETRAINED_PREFIX):
        from kdlab.pretrained.store import verified_model_file

        return verified_model_file(path)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; unsafe or broken files raise CheckpointError.

    ``path`` may be ``pretrained:<corpus>/<name>`` (its ``model.pt``: float16 weights)."""
    path = resolve_checkpoint_path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load: the file holds objects outside the weights-only safe set "
            f"(tensors, dicts, lists, numbers, strings) — {str(err).splitlines()[0]}"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path}: not a kdlab checkpoint (expected a dict with a 'model' entry)")
    return obj


# ----------------------------------------------------------------------------- RNG states


def rng_state() -> dict:
    """All RNG states (torch CPU/CUDA, Python ``random``, NumPy) as tensors and numbers."""
    version, mt, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(mt, dtype=torch.int64),
        "python_version": version,
        "python_gauss": gauss,
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    try:
        import numpy as np
    except ImportError:
        return state
    _, keys, pos, has_gauss, cached = np.random.get_state()
    state["numpy"] = {"keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)}
    return state


def set_rng_state(state: dict) -> None:
    """Restore states written by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    mt = tuple(int(v) for v in state["python"].tolist())
    random.setstate((state["python_version"], mt, state["python_gauss"]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        n = state["numpy"]
        keys = n["keys"].numpy().astype("uint32")
        np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["cached"]))


# ----------------------------------------------------------------------------- run folders


def epoch_number(path: str | Path) -> int:
    """N of a checkpoint ``epoch-N.pt``."""
    m = EPOCH_RE.match(Path(path).name)
    if m is None:
        raise ValueError(f"{path}: not an epoch checkpoint (epoch-N.pt)")
    return int(m.group(1))


def epoch_checkpoints(run_dir: str | Path) -> list[Path]:
    """``epoch-N.pt`` files of a run, sorted by N."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("epoch-*.pt") if (m := EPOCH_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete all but the last ``keep_last`` epoch checkpoints (0 keeps all)."""
    if keep_last <= 0:
        return
    for path in epoch_checkpoints(run_dir)[:-keep_last]:
        path.unlink(missing_ok=True)


def average_state_dicts(states: list[dict]) -> dict:
    """Element-wise mean of model state dicts (float accumulation in float64; integer tensors such
    as BatchNorm's ``num_batches_tracked`` use the floored mean)."""
    if not states:
        raise CheckpointError("average: no checkpoints given")
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if list(s) != keys:
            raise CheckpointError(f"average: checkpoint #{i} has different parameter names")
    avg = {}
    for k in keys:
        ref = states[0][k]
        total = sum(s[k].to(torch.float64) for s in states)
        if ref.is_floating_point() or ref.is_complex():
            avg[k] = (total / len(states)).to(ref.dtype)
        else:
            avg[k] = torch.div(total, len(states), rounding_mode="floor").to(ref.dtype)
    return avg


def average_checkpoints(paths: list[str | Path], out: str | Path) -> Path:
    """Average the models of ``paths`` into ``out`` (metadata from the last; no optimiser state)."""
    ckpts = [load_checkpoint(p) for p in paths]
    try:
        model = average_state_dicts([c["model"] for c in ckpts])
    except CheckpointError as err:
        raise CheckpointError(f"{err} ({', '.join(str(p) for p in paths)})") from None
    last = ckpts[-1]
    result = {k: last[k] for k in ("epoch", "step", "config", "kind", "vocab_size", "tokenizer_sha256")
              if k in last}
    result["model"] = model
    result["averaged"] = [str(Path(p).name) for p in paths]
    save_atomic(result, out)
    return Path(out)


def average_run(run_dir: str | Path, n: int = 5) -> Path:
    """Average the last ``n`` epoch checkpoints of a run into ``<run>/avg-<n>.pt``."""
    paths = epoch_checkpoints(run_dir)
    if n <= 0:
        raise CheckpointError(f"{run_dir}: --n must be positive, got {n}")
    if len(paths) < n:
        raise CheckpointError(f"{run_dir}: asked to average {n} checkpoints but the run has {len(paths)}")
    return average_checkpoints(paths[-n:], Path(run_dir) / f"avg-{n}.pt")


def check_tokenizer(ckpt: dict, tokenizer: Any, path: str | Path, tokenizer_dir: str | Path) -> None:
    """A checkpoint that records its tokenizer's fingerprint must meet that very tokenizer (one of the same
    size but other pieces would silently give garbage); older checkpoints without one are let through."""
    saved = ckpt.get("tokenizer_sha256")
    if saved is None:
        return
    from kdlab.data.tokenizer import tokenizer_sha256

    have = tokenizer_sha256(tokenizer)
    if saved != have:
        raise CheckpointError(f"{path}: made with another tokenizer than {tokenizer_dir} (fingerprint "
                              f"{saved[:12]}… vs {have[:12]}…); use the tokenizer of the run that trained it")


def load_model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple:
    """``(model, tokenizer, cmvn, exp_cfg)`` for a checkpoint in a run folder; model in eval mode.

    The run folder next to the checkpoint provides ``config.yaml``, ``tokenizer/`` and ``cmvn.json``.
    ``path`` may also name a shipped model, ``pretrained:<corpus>/<name>`` (see :mod:`kdlab.pretrained.store`).
    """
    if isinstance(path, str) and path.startswith(PRETRAINED_PREFIX):
        from kdlab.pretrained.store import load_spec

        return load_spec(path, device)
    from kdlab.config import load_config, resolve_model_config
    from kdlab.data.features import GlobalCMVN
    from kdlab.data.tokenizer import load_tokenizer
    from kdlab.models import build_model

    path = Path(path)
    run_dir = path.parent
    for need in ("config.yaml", "tokenizer", "cmvn.json"):
        if not (run_dir / need).exists():
            raise CheckpointError(f"{path}: the run folder {run_dir} lacks {need}")
    exp_cfg = load_config(run_dir / "config.yaml")
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    cmvn = GlobalCMVN.load(run_dir / "cmvn.json")
    ckpt = load_checkpoint(path, map_location=device)
    check_tokenizer(ckpt, tokenizer, path, run_dir / "tokenizer")
    model = build_model(resolve_model_config(exp_cfg.model), tokenizer.vocab_size, exp_cfg.model.kind)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit the model of {run_dir}/config.yaml ({err})") \
            from err
    return model.to(device).eval(), tokenizer, cmvn, exp_cfg
