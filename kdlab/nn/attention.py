"""Multi-head attention: plain (decoder) and with relative positions (Conformer encoder).

Parameter layout mirrors ESPnet2's ``MultiHeadedAttention`` / ``RelPositionMultiHeadedAttention``:
``linear_q/k/v/out`` with bias, and for the relative variant ``linear_pos`` (no bias) plus the learned
biases ``pos_bias_u``, ``pos_bias_v`` of shape (heads, d_k) (Dai et al. 2019, Transformer-XL).

Both run on ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels where the backend has
them). Masks are bool, True = attend. A query whose keys are all masked (e.g. a zero-length item) gets
all-zero attention weights, so its attention output is ``linear_out``'s bias, never NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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
        self.dropout_p = dropout  # dropout on the attention weights, applied by SDPA in training

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, H, T, d_k)."""
        return x.view(x.size(0), x.size(1), self.heads, self.d_k).transpose(1, 2)

    def project_kv(self, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected keys and values, each (B, H, T, d_k); cached by the incremental decoder."""
        return self.split_heads(self.linear_k(key)), self.split_heads(self.linear_v(value))

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, group: int = 1
    ) -> torch.Tensor:
        """q (S·g, H, Tq, d_k), k/v (S, H, Tk, d_k) -> (S·g, Tq, D), g = ``group``.

        ``mask`` is bool (True = attend) or an additive float bias (already divided by sqrt(d_k)),
        broadcastable to (S, 1|H, Tq, Tk); with ``group`` > 1 it must be a key mask (S, 1, 1, Tk).
        ``group`` > 1: each run of g consecutive query rows shares one row of keys/values (beam
        hypotheses of one utterance against its encoder output); the run's queries are attended as one.
        """
        s, h, tq, d_k = q.size(0) // group, q.size(1), q.size(2), self.d_k
        q = q.view(s, group, h, tq, d_k).transpose(1, 2).reshape(s, h, group * tq, d_k)  # (S, H, g·Tq, d_k)
        p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (S, H, g·Tq, d_k)
        out = out.view(s, h, group, tq, d_k).permute(0, 2, 3, 1, 4)  # (S, g, Tq, H, d_k)
        return self.linear_out(out.reshape(s * group, tq, h * d_k))

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """query (B, Tq, D), key/value (B, Tk, D), mask (B, 1|Tq, Tk) bool -> (B, Tq, D)."""
        q = self.split_heads(self.linear_q(query))
        k, v = self.project_kv(key, value)
        return self.attend(q, k, v, None if mask is None else mask.unsqueeze(1))


def rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """Re-index position scores from "absolute slot in R" to "key index" (a strided view of ``scores``).

    ``scores`` (B, H, T, 2T-1) holds, for query ``i``, the score against R[m], the embedding of distance
    ``T-1-m``.  The result (B, H, T, T) holds at ``[i, j]`` the score for distance ``i - j``, i.e. slot
    ``m = T-1-i+j``: element ``[b, h, i, j]`` sits at ``[b, h, i, T-1]`` moved by ``j - i`` slots, so row
    ``i`` starts ``stride_i - stride_m`` after row ``i - 1``.
    """
    scores = scores.contiguous()  # a no-op for a matmul result; makes the row stride >= the slot stride
    b, h, t, _ = scores.shape
    sb, sh, si, sm = scores.stride()
    return scores.as_strided((b, h, t, t), (sb, sh, si - sm, sm), scores.storage_offset() + (t - 1) * sm)


def rel_gather(scores: torch.Tensor, q_pos: torch.Tensor) -> torch.Tensor:
    """:func:`rel_shift` for queries at positions ``q_pos`` (B, Tq) of a length-T sequence.

    ``scores`` (B, H, Tq, 2T-1) against R[m] (distance ``T-1-m``) -> (B, H, Tq, T), ``[i, j]`` taken from
    slot ``m = T-1-q_pos[i]+j`` (distance ``q_pos[i] - j``).
    """
    b, h, tq, slots = scores.shape
    t = (slots + 1) // 2
    idx = (t - 1 - q_pos)[:, None, :, None] + torch.arange(t, device=scores.device)  # (B, 1, Tq, T)
    return scores.gather(3, idx.expand(b, h, tq, t))


def gather_positions(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (B, T, D) at positions ``pos`` (B, Tq) -> (B, Tq, D)."""
    return x.gather(1, pos[..., None].expand(-1, -1, x.size(-1)))


class RelPositionMultiHeadAttention(MultiHeadAttention):
    """Self-attention with relative positional scores (Conformer, Gulati et al. 2020).

    score(i, j) = (q_i + u)·k_j + (q_i + v)·W_pos R_{i-j}, divided by sqrt(d_k).  The fused attention
    computes the content term itself; the position term goes in as its additive float mask.
    """

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__(d_model, heads, dropout)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def position_bias(
        self, q: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor | None, q_pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """q (B, Tq, H, d_k), pos_emb (1, 2T-1, D), mask (B, 1, T) -> additive bias (B, H, Tq, T).

        Holds (q_i + v)·W_pos R_{i-j} / sqrt(d_k), and -inf at masked keys. The queries sit at positions
        ``q_pos`` (B, Tq) when given, else at all T positions (Tq = T).
        """
        p = self.split_heads(self.linear_pos(pos_emb)) / math.sqrt(self.d_k)  # (1, H, 2T-1, d_k)
        q_v = (q + self.pos_bias_v).transpose(1, 2)  # (B, H, Tq, d_k)
        scores = q_v @ p.transpose(-2, -1)  # (B, H, Tq, 2T-1)
        bias = rel_shift(scores) if q_pos is None else rel_gather(scores, q_pos)  # (B, H, Tq, T)
        if mask is None:
            return bias
        return bias.masked_fill(~mask.unsqueeze(1), float("-inf"))  # (B, H, Tq, T), contiguous

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, pos_emb: torch.Tensor, mask: torch.Tensor | None, q_pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, D), pos_emb (1, 2T-1, D), mask (B, 1, T) bool over keys -> (B, T, D).

        ``q_pos`` (B, Tq): compute only the outputs at these positions -> (B, Tq, D) (keys stay all T).
        """
        xq = x if q_pos is None else gather_positions(x, q_pos)  # (B, Tq, D)
        q = self.linear_q(xq).view(xq.size(0), xq.size(1), self.heads, self.d_k)  # (B, Tq, H, d_k)
        k, v = self.project_kv(x, x)  # (B, H, T, d_k)
        q_u = (q + self.pos_bias_u).transpose(1, 2)  # (B, H, Tq, d_k)
        return self.attend(q_u, k, v, self.position_bias(q, pos_emb, mask, q_pos))
