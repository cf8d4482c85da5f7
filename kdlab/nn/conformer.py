"""Conformer encoder (Gulati et al. 2020) in ESPnet2's "latest" relative-position form.

Block: x + ½·FFN(LN x) → x + MHSA_rel(LN x) → x + Conv(LN x) → x + ½·FFN(LN x) → LN, with dropout on
every residual branch; a final LayerNorm follows the last block.  Padded frames never influence valid
ones: attention masks padded keys, and the convolution module zeroes padded frames before its depthwise
convolution, so an utterance gives the same output alone or inside a padded batch (eval mode).

Streaming (``chunk_size > 0``, the student of Shim et al. 2023): self-attention sees only its own chunk
and ``left_chunks`` chunks before it (``kdlab.nn.masks.chunk_mask``), and the depthwise convolution is
causal (k − 1 frames of left padding, none on the right), so an encoder frame never depends on a later
chunk.  ``forward_chunk`` runs the same network one chunk at a time with per-block caches (the
normalised attention inputs of the left context and the last k − 1 convolution inputs); it gives the
outputs of the masked full-utterance forward (``kdlab/search/streaming.py``, ``tests/test_streaming.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kdlab.nn.attention import RelPositionMultiHeadAttention
from kdlab.nn.dropout import Dropout
from kdlab.nn.masks import chunk_mask, length_mask
from kdlab.nn.positional import RelativePositionalEncoding, sinusoid_table
from kdlab.nn.subsampling import Conv2dSubsampling4

# per block: (attention cache (B, K, D): normalised inputs of the left-context frames,
#             convolution cache (B, D, k - 1): the last GLU outputs before the causal depthwise conv)
BlockCache = tuple[torch.Tensor, torch.Tensor]


class FeedForward(nn.Module):
    """Position-wise FFN: ``w_2(dropout(act(w_1 x)))`` (swish in the encoder, ReLU in the decoder)."""

    def __init__(self, d_model: int, ffn_dim: int, dropout: float, activation: nn.Module) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, ffn_dim)
        self.w_2 = nn.Linear(ffn_dim, d_model)
        self.activation = activation
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))  # (B, T, D)


class ConvModule(nn.Module):
    """Pointwise d→2d, GLU, depthwise conv (kernel k), BatchNorm, swish, pointwise d→d.

    ``causal``: the depthwise convolution is padded with k − 1 zeros on the left only (streaming); else
    (k − 1)/2 on each side.  The weights have the same shapes either way.
    """

    def __init__(self, d_model: int, kernel: int, causal: bool = False) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"cnn_kernel must be odd to keep the frame count, got {kernel}")
        self.causal, self.kernel = causal, kernel
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1)
        padding = 0 if causal else kernel // 2
        self.depthwise_conv = nn.Conv1d(d_model, d_model, kernel, padding=padding, groups=d_model)
        self.norm = nn.BatchNorm1d(d_model)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), valid (B, T) bool -> (B, T, D)."""
        y = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)  # (B, D, T)
        y = y.masked_fill(~valid.unsqueeze(1), 0.0)  # padding must not leak into the depthwise conv
        if self.causal:
            y = nn.functional.pad(y, (self.kernel - 1, 0))  # (B, D, k-1+T): left context only
        return self._after_glu(y)

    def forward_chunk(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal streaming step: x (B, C, D), cache (B, D, k-1) -> (out (B, C, D), new cache (B, D, k-1))."""
        if not self.causal:
            raise ValueError("forward_chunk needs a causal convolution module (a streaming encoder)")
        y = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)  # (B, D, C)
        y = torch.cat([cache, y], dim=2)  # (B, D, k-1+C)
        return self._after_glu(y), y[:, :, y.size(2) - (self.kernel - 1):]

    def _after_glu(self, y: torch.Tensor) -> torch.Tensor:
        """Depthwise conv, BatchNorm, swish, pointwise: (B, D, T + padding) -> (B, T, D)."""
        y = self.activation(self.norm(self.depthwise_conv(y)))  # (B, D, T)
        return self.pointwise_conv2(y).transpose(1, 2)  # (B, T, D)


def chunk_attention(attn: RelPositionMultiHeadAttention, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Relative-position self-attention of a chunk against its left context, without a full T×T pass.

    x (B, C, D): the chunk's normalised inputs (the queries, the last C key positions); keys (B, N, D): the
    left-context inputs followed by x (N ≥ C).  Query a (position N−C+a) scores key j at distance
    N−C+a−j ∈ [−(C−1), N−1] exactly as the full-utterance forward does.  Returns (B, C, D).
    """
    b, c, n = x.size(0), x.size(1), keys.size(1)
    q = attn.linear_q(x).view(b, c, attn.heads, attn.d_k)  # (B, C, H, d_k)
    k, v = attn.project_kv(keys, keys)  # (B, H, N, d_k)
    distances = torch.arange(n - 1, -c, -1, device=x.device)  # (N+C-1,) = N-1 … -(C-1)
    table = sinusoid_table(distances, x.size(2)).to(x.dtype).unsqueeze(0)  # (1, N+C-1, D)
    p = attn.split_heads(attn.linear_pos(table)) / math.sqrt(attn.d_k)  # (1, H, N+C-1, d_k)
    scores = (q + attn.pos_bias_v).transpose(1, 2) @ p.transpose(-2, -1)  # (B, H, C, N+C-1)
    slot = (c - 1 - torch.arange(c, device=x.device)).unsqueeze(1) + torch.arange(n, device=x.device)  # (C, N)
    bias = scores.gather(3, slot.expand(b, attn.heads, c, n))  # (B, H, C, N): distance N-C+a-j
    return attn.attend((q + attn.pos_bias_u).transpose(1, 2), k, v, bias)  # (B, C, D)


class ConformerBlock(nn.Module):
    """One macaron Conformer block with pre-LayerNorm sub-blocks (``causal``: causal convolution)."""

    def __init__(
        self, d_model: int, heads: int, ffn_dim: int, kernel: int, dropout: float, attn_dropout: float,
        causal: bool = False,
    ):
        super().__init__()
        self.feed_forward_macaron = FeedForward(d_model, ffn_dim, dropout, nn.SiLU())
        self.self_attn = RelPositionMultiHeadAttention(d_model, heads, attn_dropout)
        self.conv_module = ConvModule(d_model, kernel, causal)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, nn.SiLU())
        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.norm_mha = nn.LayerNorm(d_model)
        self.norm_conv = nn.LayerNorm(d_model)
        self.norm_ff = nn.LayerNorm(d_model)
        self.norm_final = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, valid: torch.Tensor,
                att_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D), pos_emb (1, 2T-1, D), valid (B, T) bool -> (B, T, D).

        att_mask (B, T, T) bool (True = attend): replaces the key-padding mask (the chunk mask of a
        streaming encoder, already combined with padding).
        """
        mask = valid.unsqueeze(1) if att_mask is None else att_mask  # (B, 1|T, T)
        x = x + 0.5 * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        x = x + self.dropout(self.self_attn(self.norm_mha(x), pos_emb, mask))
        x = x + self.dropout(self.conv_module(self.norm_conv(x), valid))
        x = x + 0.5 * self.dropout(self.feed_forward(self.norm_ff(x)))
        return self.norm_final(x)

    def forward_chunk(self, x: torch.Tensor, cache: BlockCache, left_frames: int
                      ) -> tuple[torch.Tensor, BlockCache]:
        """Streaming step (eval mode): x (B, C, D) -> (B, C, D) and the new cache; the attention cache
        keeps the last ``left_frames`` frames (-1: all)."""
        if self.training:
            raise RuntimeError("forward_chunk is for inference: call .eval() first")
        att_cache, conv_cache = cache
        x = x + 0.5 * self.feed_forward_macaron(self.norm_ff_macaron(x))
        h = self.norm_mha(x)  # (B, C, D)
        keys = torch.cat([att_cache, h], dim=1)  # (B, K+C, D)
        x = x + chunk_attention(self.self_attn, h, keys)
        conv, conv_cache = self.conv_module.forward_chunk(self.norm_conv(x), conv_cache)
        x = x + conv
        x = x + 0.5 * self.feed_forward(self.norm_ff(x))
        if left_frames >= 0:
            keys = keys[:, max(keys.size(1) - left_frames, 0):]
        return self.norm_final(x), (keys, conv_cache)


class ConformerEncoder(nn.Module):
    """Conv2d x4 subsampling + relative positional encoding + N Conformer blocks + LayerNorm.

    ``chunk_size`` > 0 builds a streaming encoder (causal convolutions; attention within chunks of that
    many encoder frames plus ``left_chunks`` chunks of left context, -1: all).  ``chunk_size`` and
    ``left_chunks`` are plain attributes: changing them later changes only the attention context (e.g. to
    evaluate at other chunk sizes; 0 = full attention context, the convolutions stay causal).
    """

    def __init__(
        self,
        n_mels: int,
        d_model: int,
        heads: int,
        ffn_dim: int,
        blocks: int,
        kernel: int,
        dropout: float,
        pos_dropout: float,
        attn_dropout: float,
        subsample_channels: int = 0,
        chunk_size: int = 0,
        left_chunks: int = -1,
    ) -> None:
        super().__init__()
        if chunk_size < 0 or left_chunks < -1:
            raise ValueError(f"chunk_size={chunk_size} must be >= 0 and left_chunks={left_chunks} >= -1")
        self.chunk_size, self.left_chunks = chunk_size, left_chunks
        self.causal = chunk_size > 0
        self.embed = Conv2dSubsampling4(n_mels, d_model, subsample_channels)
        self.pos_enc = RelativePositionalEncoding(d_model, pos_dropout)
        self.blocks = nn.ModuleList(
            ConformerBlock(d_model, heads, ffn_dim, kernel, dropout, attn_dropout, self.causal)
            for _ in range(blocks)
        )
        self.after_norm = nn.LayerNorm(d_model)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F), feat_lens (B,) -> (enc (B, T', D), enc_lens (B,))."""
        enc, lens, _ = self.forward_hidden(feats, feat_lens)
        return enc, lens

    def attention_mask(self, valid: torch.Tensor) -> torch.Tensor | None:
        """valid (B, T') -> the streaming attention mask (B, T', T') (chunks and padding), or None when
        the attention context is full (the blocks then mask padded keys only)."""
        if self.chunk_size <= 0:
            return None
        chunks = chunk_mask(valid.size(1), self.chunk_size, self.left_chunks, valid.device)  # (T', T')
        return valid.unsqueeze(1) & chunks.unsqueeze(0)  # (B, T', T')

    def forward_hidden(
        self, feats: torch.Tensor, feat_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Like ``forward``, plus every block's output: hidden[k] (B, T', D) is block k+1's (before the
        final LayerNorm), for intermediate CTC heads and layer-to-layer KD."""
        x, lens = self.embed(feats, feat_lens)  # (B, T', D)
        valid = length_mask(lens, x.size(1))  # (B, T')
        att_mask = self.attention_mask(valid)  # (B, T', T') or None
        x, pos_emb = self.pos_enc(x)  # (B, T', D), (1, 2T'-1, D)
        hidden = []
        for block in self.blocks:
            x = block(x, pos_emb, valid, att_mask)
            hidden.append(x)
        return self.after_norm(x), lens, hidden

    def relative_positions(self, x: torch.Tensor) -> torch.Tensor:
        """Relative position embeddings (1, 2T'-1, D) for x (B, T', D) (for blocks outside the stack)."""
        return self.pos_enc(x)[1]

    # ------------------------------------------------------------------ streaming, one chunk at a time

    def init_cache(self, batch: int = 1) -> list[BlockCache]:
        """Empty per-block caches: no left context, zero convolution history (= the causal padding)."""
        d, p = self.after_norm.normalized_shape[0], next(self.parameters())
        k = self.blocks[0].conv_module.kernel if len(self.blocks) else 1
        return [(p.new_zeros(batch, 0, d), p.new_zeros(batch, d, k - 1)) for _ in self.blocks]

    def forward_chunk(self, feats: torch.Tensor, cache: list[BlockCache]
                      ) -> tuple[torch.Tensor, list[BlockCache]]:
        """One streaming step: feats (B, n, F), n ≥ 7, the input frames of the next chunk plus the
        subsampling's 3-frame look-ahead (n = 4·C + 3 gives C encoder frames) -> (enc (B, C, D), new cache).
        """
        if not self.causal:
            raise ValueError("forward_chunk needs a streaming encoder (chunk_size > 0 when built)")
        lens = torch.full((feats.size(0),), feats.size(1), dtype=torch.long, device=feats.device)
        x, _ = self.embed(feats, lens)  # (B, C, D)
        x = x * self.pos_enc.scale
        left = self.left_chunks * self.chunk_size if self.left_chunks >= 0 and self.chunk_size > 0 else -1
        new_cache = []
        for block, block_cache in zip(self.blocks, cache, strict=True):
            x, block_cache = block.forward_chunk(x, block_cache, left)
            new_cache.append(block_cache)
        return self.after_norm(x), new_cache
