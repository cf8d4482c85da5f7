"""Transformer decoder: causal (AR, eq 1–2) or bidirectional (CMLM for Mask-CTC, eq 4).

Layout mirrors ESPnet2's ``TransformerDecoder``: Embedding + absolute sinusoidal positions, N pre-LN
blocks of self-attention → source attention → FFN (ReLU), a final LayerNorm and ``Linear(d → V)``.

Incremental decoding (``step``) keeps, per layer, the projected self-attention keys/values of the
positions already seen and the projected encoder keys/values, so each call only computes the new
positions.  A cache is ``list[dict[str, Tensor]]`` (one dict per layer) whose tensors all have the
hypotheses on dim 0; reorder it for beam search with ``select_cache``.
"""

from __future__ import annotations

import torch
from torch import nn

from kdlab.nn.attention import MultiHeadAttention
from kdlab.nn.conformer import FeedForward
from kdlab.nn.masks import causal_mask, length_mask
from kdlab.nn.positional import AbsolutePositionalEncoding

LayerCache = dict[str, torch.Tensor]


def select_cache(cache: list[LayerCache], index: torch.Tensor) -> list[LayerCache]:
    """Pick hypotheses ``index`` (N',) from every cached tensor (dim 0)."""
    return [{name: t.index_select(0, index) for name, t in layer.items()} for layer in cache]


class DecoderLayer(nn.Module):
    """Pre-LN: x + SelfAttn(LN x) → x + SrcAttn(LN x, enc) → x + FFN(LN x)."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float, attn_dropout: float) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, heads, attn_dropout)
        self.src_attn = MultiHeadAttention(d_model, heads, attn_dropout)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, nn.ReLU())
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        self_mask: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        cache: LayerCache | None = None,
    ) -> tuple[torch.Tensor, LayerCache]:
        """x (B, l, D) new positions; self_mask (B, l, past + l); memory (B, T', D); memory_mask (B, 1, T').

        Returns the new positions' outputs (B, l, D) and the layer cache extended by them.
        """
        h = self.norm1(x)
        k, v = self.self_attn.project_kv(h, h)  # (B, H, l, d_k)
        if cache is not None:
            k, v = torch.cat([cache["self_k"], k], dim=2), torch.cat([cache["self_v"], v], dim=2)
            src_k, src_v = cache["src_k"], cache["src_v"]
        else:
            src_k, src_v = self.src_attn.project_kv(memory, memory)  # (B, H, T', d_k)
        q = self.self_attn.split_heads(self.self_attn.linear_q(h))
        x = x + self.dropout(self.self_attn.attend(q, k, v, self_mask.unsqueeze(1)))
        q = self.src_attn.split_heads(self.src_attn.linear_q(self.norm2(x)))
        x = x + self.dropout(self.src_attn.attend(q, src_k, src_v, memory_mask.unsqueeze(1)))
        x = x + self.dropout(self.feed_forward(self.norm3(x)))
        return x, {"self_k": k, "self_v": v, "src_k": src_k, "src_v": src_v}


class TransformerDecoder(nn.Module):
    """Token decoder over encoder output; ``causal=True`` for AR, ``False`` for the Mask-CTC CMLM."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        heads: int,
        ffn_dim: int,
        blocks: int,
        dropout: float,
        pos_dropout: float,
        attn_dropout: float,
        causal: bool,
    ) -> None:
        super().__init__()
        self.vocab_size, self.causal = vocab_size, causal
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos_enc = AbsolutePositionalEncoding(d_model, pos_dropout)
        self.decoders = nn.ModuleList(
            DecoderLayer(d_model, heads, ffn_dim, dropout, attn_dropout) for _ in range(blocks)
        )
        self.after_norm = nn.LayerNorm(d_model)
        self.output_layer = nn.Linear(d_model, vocab_size)

    def check_tokens(self, ys: torch.Tensor) -> None:
        bad = ((ys < 0) | (ys >= self.vocab_size)).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f"decoder input rows {bad} hold ids outside [0, {self.vocab_size}) (padding left in?)"
            )

    def forward(
        self, ys_in: torch.Tensor, ys_lens: torch.Tensor, memory: torch.Tensor, memory_lens: torch.Tensor
    ) -> torch.Tensor:
        """ys_in (B, L), ys_lens (B,), memory (B, T', D), memory_lens (B,) -> logits (B, L, V).

        Positions at or beyond ``ys_lens`` may hold any value (e.g. ``IGNORE_ID``); their logits are junk.
        """
        length = ys_in.size(1)
        valid = length_mask(ys_lens, length)  # (B, L)
        ys_in = ys_in.masked_fill(~valid, 0)  # padding (e.g. IGNORE_ID) is never attended to
        self.check_tokens(ys_in)
        self_mask = valid.unsqueeze(1)  # (B, 1, L) keys
        if self.causal:
            self_mask = self_mask & causal_mask(length, ys_in.device).unsqueeze(0)  # (B, L, L)
        self_mask = self_mask.expand(-1, length, -1)
        memory_mask = length_mask(memory_lens, memory.size(1)).unsqueeze(1)  # (B, 1, T')
        x = self.pos_enc(self.embed(ys_in))  # (B, L, D)
        for layer in self.decoders:
            x, _ = layer(x, self_mask, memory, memory_mask)
        return self.output_layer(self.after_norm(x))  # (B, L, V)

    def step(
        self,
        ys: torch.Tensor,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        cache: list[LayerCache] | None,
    ) -> tuple[torch.Tensor, list[LayerCache]]:
        """Causal incremental decoding over the full prefix ``ys`` (N, l) without padding.

        Only positions not yet in ``cache`` are computed.  Returns the last position's logits (N, V)
        and the updated cache.
        """
        if not self.causal:
            raise RuntimeError("incremental decoding needs a causal decoder")
        self.check_tokens(ys)
        past = 0 if cache is None else cache[0]["self_k"].size(2)
        if past >= ys.size(1):
            raise ValueError(f"prefix length {ys.size(1)} is not longer than the cached length {past}")
        self_mask = causal_mask(ys.size(1), ys.device)[past:].unsqueeze(0).expand(ys.size(0), -1, -1)
        memory_mask = length_mask(memory_lens, memory.size(1)).unsqueeze(1)  # (N, 1, T')
        x = self.pos_enc(self.embed(ys[:, past:]), offset=past)  # (N, new, D)
        new_cache = []
        for i, layer in enumerate(self.decoders):
            x, layer_cache = layer(x, self_mask, memory, memory_mask, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        logits = self.output_layer(self.after_norm(x[:, -1]))  # (N, V)
        return logits, new_cache
