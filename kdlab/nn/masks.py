"""Boolean masks shared by the encoder and the decoders.

Convention: ``True`` marks a position that may be attended to / holds real data.
"""

from __future__ import annotations

import torch


def length_mask(lengths: torch.Tensor, max_len: int | None = None, strict: bool = False) -> torch.Tensor:
    """Return ``(B, T)`` bool, True for frames ``t < lengths[b]``.

    ``strict``: a length beyond ``max_len`` raises ValueError instead of being cut (costs a device sync).
    """
    if max_len is None:
        max_len = int(lengths.max().item())
    elif strict and lengths.numel() and int(lengths.max()) > max_len:
        raise ValueError(f"a length ({int(lengths.max())}) exceeds the padded size {max_len}")
    steps = torch.arange(max_len, device=lengths.device)  # (T,)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def causal_mask(size: int, device: torch.device | None = None) -> torch.Tensor:
    """Return ``(size, size)`` bool, True where query ``i`` may see key ``j <= i``."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def subsampled_lengths(feat_lens: torch.Tensor) -> torch.Tensor:
    """Frame count after the Conv2d x4 subsampling: ``((T - 1) // 2 - 1) // 2``."""
    return torch.div(torch.div(feat_lens - 1, 2, rounding_mode="floor") - 1, 2, rounding_mode="floor")


def chunk_mask(size: int, chunk: int, left_chunks: int = -1, device: torch.device | None = None
               ) -> torch.Tensor:
    """Chunk-based attention mask for a streaming encoder: ``(size, size)`` bool, True where query ``i``
    may see key ``j``.

    Frames are grouped into chunks of ``chunk`` frames; query ``i`` sees every key of its own chunk and of
    the ``left_chunks`` chunks before it (``-1``: all earlier chunks), never a later chunk (Shim et al.
    2023's streaming student; chunk-wise attention as in WeNet / U2).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if left_chunks < -1:
        raise ValueError(f"left_chunks must be >= -1, got {left_chunks}")
    index = torch.arange(size, device=device) // chunk  # (T,) chunk of each frame
    behind = index.unsqueeze(1) - index.unsqueeze(0)  # (T, T) chunk(i) - chunk(j)
    allowed = behind >= 0
    if left_chunks >= 0:
        allowed &= behind <= left_chunks
    return allowed
