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
