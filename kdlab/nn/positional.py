"""Sinusoidal positional encodings.

* ``AbsolutePositionalEncoding`` — decoder input: ``x * sqrt(d) + PE[pos]`` (Vaswani et al.).
* ``RelativePositionalEncoding`` — Conformer encoder: scales ``x`` by ``sqrt(d)`` and returns, separately,
  the embeddings of the ``2T - 1`` relative distances ``T-1, ..., 1, 0, -1, ..., -(T-1)`` used by the
  relative-position self-attention (Transformer-XL style, as in ESPnet's "latest" rel-pos encoder).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kdlab.nn.dropout import Dropout


def sinusoid_table(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Sinusoids for (possibly negative) float ``positions`` (P,) -> (P, d_model).

    Even channels hold ``sin(pos / 10000^(2i/d))``, odd channels the matching cosine.
    """
    if d_model % 2:
        raise ValueError(f"d_model must be even for sinusoidal encodings, got {d_model}")
    freq = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32, device=positions.device)
        * (-math.log(10000.0) / d_model)
    )  # (d/2,)
    angles = positions.float().unsqueeze(1) * freq.unsqueeze(0)  # (P, d/2)
    table = torch.zeros(positions.numel(), d_model, device=positions.device)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


class AbsolutePositionalEncoding(nn.Module):
    """``dropout(x * sqrt(d) + PE[offset : offset + L])``; ``offset`` serves incremental decoding."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = math.sqrt(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        # x: (B, L, D)
        pos = torch.arange(offset, offset + x.size(1), device=x.device)  # (L,)
        pe = sinusoid_table(pos, self.d_model).to(x.dtype)  # (L, D)
        return self.dropout(x * self.scale + pe.unsqueeze(0))


class RelativePositionalEncoding(nn.Module):
    """Return ``(dropout(x * sqrt(d)), dropout(R))`` with ``R`` (1, 2T-1, D) for distances T-1 … -(T-1)."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        self.scale = math.sqrt(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, T, D)
        t = x.size(1)
        distances = torch.arange(t - 1, -t, -1, device=x.device)  # (2T-1,) = T-1 … -(T-1)
        rel = sinusoid_table(distances, self.d_model).to(x.dtype).unsqueeze(0)  # (1, 2T-1, D)
        return self.dropout(x * self.scale), self.dropout(rel)
