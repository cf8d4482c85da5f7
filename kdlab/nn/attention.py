"""Multi-head attention: plain (decoder) and with relative positions (Conformer encoder).

Parameter layout mirrors ESPnet2's ``MultiHeadedAttention`` / ``RelPositionMultiHeadedAttention``:
``linear_q/k/v/out`` with bias, and for the relative variant ``linear_pos`` (no bias) plus the learned
biases ``pos_bias_u``, ``pos_bias_v`` of shape (heads, d_k) (Dai et al. 2019, Transformer-XL).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last dim; ``mask`` (bool, True = keep) broadcasts to ``scores``.

    Fully masked rows give all-zero weights instead of NaN.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with ``heads`` heads of size ``d_k = d_model / heads``."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model={d_model} is not divisible by heads={heads}")
        self.heads, self.d_k = heads, d_model // heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, H, T, d_k)."""
        return x.view(x.size(0), x.size(1), self.heads, self.d_k).transpose(1, 2)

    def project_kv(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected keys and values, each (B, H, T, d_k); cached by the incremental decoder."""
        return self.split_heads(self.linear_k(key)), self.split_heads(self.linear_v(value))

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """q (B, H, Tq, d_k), k/v (B, H, Tk, d_k), mask broadcastable to (B, 1|H, Tq, Tk) -> (B, Tq, D)."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_k)  # (B, H, Tq, Tk)
        return self.combine(scores, v, mask)

    def combine(self, scores: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Weights from ``scores`` (B, H, Tq, Tk) applied to ``v`` (B, H, Tk, d_k) -> (B, Tq, D)."""
        weights = self.dropout(masked_softmax(scores, mask))
        out = (weights @ v).transpose(1, 2)  # (B, Tq, H, d_k)
        return self.linear_out(out.reshape(out.size(0), out.size(1), -1))

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """query (B, Tq, D), key/value (B, Tk, D), mask (B, 1|Tq, Tk) bool -> (B, Tq, D)."""
        q = self.split_heads(self.linear_q(query))
        k, v = self.project_kv(key, value)
        return self.attend(q, k, v, None if mask is None else mask.unsqueeze(1))


def rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """Re-index position scores from "absolute slot in R" to "key index".

    ``scores`` (B, H, T, 2T-1) holds, for query ``i``, the score against R[m], the embedding of distance
    ``T-1-m``.  The result (B, H, T, T) holds at ``[i, j]`` the score for distance ``i - j``, i.e. slot
    ``m = T-1-i+j``.
    """
    t = scores.size(2)
    i = torch.arange(t, device=scores.device).unsqueeze(1)  # (T, 1)
    j = torch.arange(t, device=scores.device).unsqueeze(0)  # (1, T)
    slots = (t - 1 - i + j).expand(*scores.shape[:2], t, t)  # (B, H, T, T)
    return scores.gather(-1, slots)


class RelPositionMultiHeadAttention(MultiHeadAttention):
    """Self-attention with relative positional scores (Conformer, Gulati et al. 2020).

    score(i, j) = (q_i + u)·k_j + (q_i + v)·W_pos R_{i-j}, divided by sqrt(d_k).
    """

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__(d_model, heads, dropout)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """x (B, T, D), pos_emb (1, 2T-1, D), mask (B, 1, T) bool over keys -> (B, T, D)."""
        q = self.linear_q(x).view(x.size(0), x.size(1), self.heads, self.d_k)  # (B, T, H, d_k)
        k, v = self.project_kv(x, x)  # (B, H, T, d_k)
        p = self.split_heads(self.linear_pos(pos_emb))  # (1, H, 2T-1, d_k)
        q_u = (q + self.pos_bias_u).transpose(1, 2)  # (B, H, T, d_k)
        q_v = (q + self.pos_bias_v).transpose(1, 2)  # (B, H, T, d_k)
        content = q_u @ k.transpose(-2, -1)  # (B, H, T, T)
        position = rel_shift(q_v @ p.transpose(-2, -1))  # (B, H, T, T)
        scores = (content + position) / math.sqrt(self.d_k)
        return self.combine(scores, v, None if mask is None else mask.unsqueeze(1))
