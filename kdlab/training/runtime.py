"""Where training runs: device, threads, seeding, mixed precision and ``torchrun`` DDP process groups."""

from __future__ import annotations

import contextlib
import os
import random
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist

from kdlab.config import TrainConfig


@dataclass
class Runtime:
    """One training process: its device and its place among ``world_size`` DDP processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and shows progress bars."""
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` when a GPU is present, else ``cpu``."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device is {name!r} but no CUDA device is available")
    return device


def setup_runtime(cfg: TrainConfig) -> Runtime:
    """Read ``torchrun``'s environment (RANK, WORLD_SIZE, LOCAL_RANK) and join the process group.

    NCCL on GPUs, gloo on CPU. Without those variables this is a single process.
    """
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Runtime(pick_device(cfg.device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return Runtime(device, rank, world_size)


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and all GPUs)."""
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass


def set_deterministic(flag: bool) -> None:
    """Deterministic kernels (warn-only where torch has none) for bit-exact reruns.

    The torch call is skipped when nothing changes: it imports torch._dynamo (2.4 s per process)."""
    if flag != torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(flag, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.deterministic = flag
        torch.backends.cudnn.benchmark = not flag


def autocast_dtype(precision: str, device: torch.device, allow_cpu: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32.

    bf16/fp16 are meant for GPUs. On CPU they fall back to fp32 with a warning, except bf16 when
    ``allow_cpu`` is set (CPU bf16 autocast works, slowly; used to exercise the code path).
    """
    if precision == "fp32":
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    if device.type == "cuda":
        if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
            warnings.warn("train.precision=bf16 but this GPU lacks bf16; using fp32", stacklevel=2)
            return None
        return dtype
    if allow_cpu and dtype is torch.bfloat16:
        return dtype
    warnings.warn(f"train.precision={precision} needs a GPU; training in fp32 on {device}", stacklevel=2)
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` context for ``dtype`` (a no-op context for fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Gradient scaler, enabled only for fp16 (bf16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)


def all_reduce_sum(values: list[float], rt: Runtime) -> list[float]:
    """Sum a few numbers over all ranks (identity in a single process)."""
    if not rt.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_reduce_min(value: int, rt: Runtime) -> int:
    """Minimum of an integer over all ranks (identity in a single process)."""
    if not rt.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=rt.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())
