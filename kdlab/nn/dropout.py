"""Dropout with a cheaper random mask on the CPU.

``nn.Dropout`` on the CPU draws one Bernoulli number per element (``bernoulli_``, ~6 ns each on the
development machine): 13–15 % of a mini model's training step (docs/RESULTS.md, "Training speed"). Here
one 64-bit draw of torch's generator gives four 15-bit fields, and an element is kept when its field is at
least ``round(p · 2^15)``. The keep probability is 1 − p to within 2^-16, the survivors are scaled by
1 / (1 − p) as in ``nn.Dropout``, and the mask follows ``torch.manual_seed`` like any other draw. On other
devices (and in eval mode) this is ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FIELD_BITS = 15  # bits per keep/drop decision: four fields per 64-bit draw (the top one has 15 random bits)
FIELD_MASK = (1 << FIELD_BITS) - 1


def keep_mask(shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """0/1 mask (int16) of ``shape``, each element 1 with probability 1 − p (to within 2^-16)."""
    n = shape.numel()
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_()  # [0, 2^63): 63 random bits
    fields = draws.view(torch.int16)[:n].bitwise_and_(FIELD_MASK)  # (n,) uniform on [0, 2^15)
    return fields.ge_(round(p * (1 << FIELD_BITS))).view(shape)  # in place: 1 where kept


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each element of ``x`` with probability ``p`` and scale the rest by 1 / (1 − p) (training only)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    scale = keep_mask(x.shape, p, x.device).to(x.dtype).mul_(1.0 / (1.0 - p))  # same shape as x
    return x * scale


class Dropout(nn.Module):
    """Drop-in for ``nn.Dropout`` (same ``p`` and behaviour) with :func:`dropout`'s cheaper CPU mask."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
