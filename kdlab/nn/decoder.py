"""Transformer decoder: causal (AR, eq 1–2) or bidirectional (CMLM for Mask-CTC, eq 4).

Layout mirrors ESPnet2's ``TransformerDecoder``: Embedding + absolute sinusoidal positions, N pre-LN
blocks of self-attention → source attention → FFN (ReLU), a final LayerNorm and ``Linear(d → V)``.

Incremental decoding (``step``) keeps, per layer, the projected self-attention keys/values of the
positions already seen (``self_k``/``self_v``) and the projected encoder keys/values (``src``, a
:class:`SourceKV`), so each call only computes the new positions.  A cache is ``list[LayerCache]`` (one
dict per layer) whose tensors all have the hypotheses on dim 0; reorder it for beam search with
``select_cache``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from kdlab.nn.attention import MultiHeadAttention, RelPositionMultiHeadAttention, gather_positions
from kdlab.nn.conformer import FeedForward
from kdlab.nn.dropout import Dropout
from kdlab.nn.masks import causal_mask, length_mask
from kdlab.nn.positional import AbsolutePositionalEncoding, RelativePositionalEncoding, sinusoid_table


@dataclass(frozen=True)
class SourceKV:
    """One layer's projected encoder output, shared by runs of ``group`` hypotheses of one utterance.

    ``k``, ``v`` (S, H, T', d_k) and the key mask ``mask`` (S, 1, 1, T'); hypothesis ``n`` reads source
    row ``n // group``.  Reordering keeps them per utterance, and copies nothing while the utterances stay.
    """

    k: torch.Tensor
    v: torch.Tensor
    mask: torch.Tensor
    group: int

    def select(self, index: torch.Tensor, group: int) -> SourceKV:
        """Source of hypotheses ``index`` (N',) whose runs of ``group`` rows each share an utterance."""
        src = index[::group] // self.group  # (N' / group,) source row of each new run
        if len(src) == self.k.size(0) and torch.equal(src, torch.arange(len(src), device=src.device)):
            return self if group == self.group else replace(self, group=group)
        return SourceKV(self.k[src], self.v[src], self.mask[src], group)


LayerCache = dict[str, Any]  # "self_k", "self_v": (N, H, l, d_k); "src": SourceKV


def select_cache(cache: Any, index: torch.Tensor, group: int = 1) -> Any:
    """Reorder a decoder cache: pick hypotheses ``index`` (N',) from every tensor (dim 0).

    Works on any nesting of lists, tuples and dicts; plain numbers (e.g. a step counter) are shared by all
    hypotheses and kept as they are.  ``group`` > 1 promises that the new rows come in runs of ``group``
    hypotheses of one utterance (as in a beam of that width): :class:`SourceKV` entries are then stored
    once per run, and not copied at all while the runs keep their utterances.
    """
    if cache is None or isinstance(cache, (int, float, bool)):
        return cache
    if isinstance(cache, torch.Tensor):
        return cache.index_select(0, index.to(cache.device))
    if isinstance(cache, SourceKV):
        if len(index) % group:
            raise ValueError(f"{len(index)} hypotheses do not come in runs of {group}")
        return cache.select(index.to(cache.k.device), group)
    if isinstance(cache, (list, tuple)):
        return type(cache)(select_cache(c, index, group) for c in cache)
    if isinstance(cache, dict):
        return {k: select_cache(v, index, group) for k, v in cache.items()}
    raise TypeError(f"cannot reorder a decoder cache of type {type(cache).__name__}")


class DecoderLayer(nn.Module):
    """Pre-LN: x + SelfAttn(LN x) → x + SrcAttn(LN x, enc) → x + FFN(LN x)."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float, attn_dropout: float,
                 rel_pos: bool = False) -> None:
        super().__init__()
        attn = RelPositionMultiHeadAttention if rel_pos else MultiHeadAttention
        self.self_attn = attn(d_model, heads, attn_dropout)
        self.src_attn = MultiHeadAttention(d_model, heads, attn_dropout)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, nn.ReLU())
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def source(self, memory: torch.Tensor, memory_mask: torch.Tensor, group: int = 1) -> SourceKV:
        """The projected encoder output of this layer: memory (S, T', D), memory_mask (S, 1, T')."""
        src_k, src_v = self.src_attn.project_kv(memory, memory)  # (S, H, T', d_k)
        return SourceKV(src_k, src_v, memory_mask.unsqueeze(1), group)

    def forward(
        self,
        x: torch.Tensor,
        self_mask: torch.Tensor | None,
        memory: torch.Tensor | None,
        memory_mask: torch.Tensor | None,
        cache: LayerCache | None = None,
        src: SourceKV | None = None,
        q_pos: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, LayerCache]:
        """x (N, l, D) new positions; self_mask (N|1, l|1, past + l) or None (all visible);
        memory (S, T', D) and memory_mask (S, 1, T'), each row shared by N / S consecutive rows of ``x``;
        or ``src``, the source already projected (memory then unused). ``q_pos`` (N, Q): outputs at these
        positions only (a key mask ``self_mask`` (N, 1, l), no cache).

        Returns the new positions' outputs (N, l|Q, D) and the layer cache extended by them.
        """
        h = self.norm1(x)
        k, v = self.self_attn.project_kv(h, h)  # (N, H, l, d_k)
        if cache is not None:
            k, v = torch.cat([cache["self_k"], k], dim=2), torch.cat([cache["self_v"], v], dim=2)
            src = cache["src"]
        elif src is None:
            src = self.source(memory, memory_mask, x.size(0) // memory.size(0))
        if q_pos is not None:
            x, h = gather_positions(x, q_pos), gather_positions(h, q_pos)  # (N, Q, D)
        q = self.self_attn.split_heads(self.self_attn.linear_q(h))  # (N, H, l|Q, d_k)
        mask = None if self_mask is None else self_mask.unsqueeze(1)  # (N|1, 1, l|1, past + l)
        x = x + self.dropout(self.self_attn.attend(q, k, v, mask))
        return self._source_and_ffn(x, src), {"self_k": k, "self_v": v, "src": src}


    def forward_rel(self, x: torch.Tensor, pos_emb: torch.Tensor, key_mask: torch.Tensor, memory: torch.Tensor | None,
                    memory_mask: torch.Tensor | None, src: SourceKV | None = None,
                    q_pos: torch.Tensor | None = None) -> torch.Tensor:
        """Bidirectional block with relative-position self-attention (CMLM, ``rel_pos=True``).

        x (B, L, D), pos_emb (1, 2L-1, D), key_mask (B, 1, L), memory (B, T', D), memory_mask (B, 1, T');
        or ``src``, the source already projected (memory then unused). ``q_pos`` (B, Q): outputs at these
        positions only -> (B, Q, D) (every position still serves as a key).
        """
        att = self.self_attn(self.norm1(x), pos_emb, key_mask, q_pos)  # (B, L|Q, D)
        x = x if q_pos is None else gather_positions(x, q_pos)
        x = x + self.dropout(att)
        return self._source_and_ffn(x, src if src is not None else self.source(memory, memory_mask))

    def _source_and_ffn(self, x: torch.Tensor, src: SourceKV) -> torch.Tensor:
        """x + SrcAttn(LN x, encoder) → x + FFN(LN x); x (N, l, D), runs of ``src.group`` rows per source."""
        q = self.src_attn.split_heads(self.src_attn.linear_q(self.norm2(x)))  # (N, H, l, d_k)
        x = x + self.dropout(self.src_attn.attend(q, src.k, src.v, src.mask, src.group))
        return x + self.dropout(self.feed_forward(self.norm3(x)))


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
        rel_pos: bool = False,
        embed_std: float | None = None,
        abs_pos: bool = False,
    ) -> None:
        super().__init__()
        if rel_pos and causal:
            raise ValueError("relative positions are implemented for the bidirectional (CMLM) decoder only")
        self.vocab_size, self.causal, self.rel_pos = vocab_size, causal, rel_pos
        self.abs_pos = abs_pos and rel_pos  # absolute positions on top of relative ones (plain: always absolute)
        self.embed = nn.Embedding(vocab_size, d_model)
        if embed_std is not None:  # e.g. d^-0.5: embeddings · sqrt(d) then start at the scale of the positions
            nn.init.normal_(self.embed.weight, std=embed_std)
        self.pos_enc = (RelativePositionalEncoding if rel_pos else AbsolutePositionalEncoding)(d_model, pos_dropout)
        self.decoders = nn.ModuleList(
            DecoderLayer(d_model, heads, ffn_dim, dropout, attn_dropout, rel_pos) for _ in range(blocks)
        )
        self.after_norm = nn.LayerNorm(d_model)
        self.output_layer = nn.Linear(d_model, vocab_size)

    def check_tokens(self, ys: torch.Tensor) -> None:
        bad = ((ys < 0) | (ys >= self.vocab_size)).any(dim=1).nonzero().flatten().tolist()
        if bad:
            raise ValueError(
                f"decoder input rows {bad} hold ids outside [0, {self.vocab_size}) (padding left in?)"
            )

    def sources(self, memory: torch.Tensor, memory_lens: torch.Tensor) -> list[SourceKV]:
        """Every layer's projected encoder output: memory (S, T', D), memory_lens (S,). Computed once per
        utterance, it serves every later :meth:`forward` call on that utterance (Mask-CTC iterations, beams)."""
        memory_mask = length_mask(memory_lens, memory.size(1)).unsqueeze(1)  # (S, 1, T')
        return [layer.source(memory, memory_mask) for layer in self.decoders]

    def forward(
        self, ys_in: torch.Tensor, ys_lens: torch.Tensor, memory: torch.Tensor | None,
        memory_lens: torch.Tensor | None, sources: list[SourceKV] | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """ys_in (B, L), ys_lens (B,), memory (B, T', D), memory_lens (B,) -> logits (B, L, V).

        ``sources`` (from :meth:`sources`, one row per row of ``ys_in``) replace memory and memory_lens.
        Positions at or beyond ``ys_lens`` may hold any value (e.g. ``IGNORE_ID``); their logits are junk.
        ``positions`` (B, Q), bidirectional decoder only: the logits at these positions only (B, Q, V); the
        last block then computes just those queries (Mask-CTC needs the masked slots' posteriors only).
        """
        length = ys_in.size(1)
        valid = length_mask(ys_lens, length)  # (B, L)
        ys_in = ys_in.masked_fill(~valid, 0)  # padding (e.g. IGNORE_ID) is never attended to
        self.check_tokens(ys_in)
        self_mask = valid.unsqueeze(1)  # (B, 1, L) keys
        if self.causal:
            if positions is not None:
                raise ValueError("positions= needs the bidirectional (CMLM) decoder")
            self_mask = self_mask & causal_mask(length, ys_in.device).unsqueeze(0)  # (B, L, L)
        if sources is None:
            sources = self.sources(memory, memory_lens)
        last = len(self.decoders) - 1
        if self.rel_pos:
            x, pos_emb = self.pos_enc(self.embed(ys_in))  # (B, L, D), (1, 2L-1, D)
            if self.abs_pos:
                x = x + sinusoid_table(torch.arange(length, device=x.device), x.size(-1)).to(x.dtype)
            for i, (layer, src) in enumerate(zip(self.decoders, sources, strict=True)):
                x = layer.forward_rel(x, pos_emb, self_mask, None, None, src, positions if i == last else None)
        else:
            x = self.pos_enc(self.embed(ys_in))  # (B, L, D)
            for i, (layer, src) in enumerate(zip(self.decoders, sources, strict=True)):
                x, _ = layer(x, self_mask, None, None, src=src, q_pos=positions if i == last else None)
        return self.output_layer(self.after_norm(x))  # (B, L|Q, V)

    def step(
        self,
        ys: torch.Tensor,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        cache: list[LayerCache] | None,
    ) -> tuple[torch.Tensor, list[LayerCache]]:
        """Causal incremental decoding over the full prefix ``ys`` (N, l) without padding.

        ``memory`` (S, T', D) and ``memory_lens`` (S,) are only read when ``cache`` is None; S may divide
        N, each memory row then serving N / S consecutive hypotheses.  Only positions not yet in ``cache``
        are computed (and checked).  Returns the last position's logits (N, V) and the updated cache.
        """
        if not self.causal:
            raise RuntimeError("incremental decoding needs a causal decoder")
        past = 0 if cache is None else cache[0]["self_k"].size(2)
        if past >= ys.size(1):
            raise ValueError(f"prefix length {ys.size(1)} is not longer than the cached length {past}")
        if cache is None and ys.size(0) % memory.size(0):
            raise ValueError(f"{ys.size(0)} hypotheses cannot share {memory.size(0)} memory rows evenly")
        self.check_tokens(ys[:, past:])
        self_mask = None  # one new position sees the whole prefix
        if ys.size(1) - past > 1:
            self_mask = causal_mask(ys.size(1), ys.device)[past:].unsqueeze(0)  # (1, new, l)
        memory_mask = length_mask(memory_lens, memory.size(1)).unsqueeze(1)  # (S, 1, T')
        x = self.pos_enc(self.embed(ys[:, past:]), offset=past)  # (N, new, D)
        new_cache = []
        for i, layer in enumerate(self.decoders):
            x, layer_cache = layer(x, self_mask, memory, memory_mask, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        logits = self.output_layer(self.after_norm(x[:, -1]))  # (N, V)
        return logits, new_cache
