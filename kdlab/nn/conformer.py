"""Conformer encoder (Gulati et al. 2020) in ESPnet2's "latest" relative-position form.

Block: x + ½·FFN(LN x) → x + MHSA_rel(LN x) → x + Conv(LN x) → x + ½·FFN(LN x) → LN, with dropout on
every residual branch; a final LayerNorm follows the last block.  Padded frames never influence valid
ones: attention masks padded keys, and the convolution module zeroes padded frames before its depthwise
convolution, so an utterance gives the same output alone or inside a padded batch (eval mode).
"""

from __future__ import annotations

import torch
from torch import nn

from kdlab.nn.attention import RelPositionMultiHeadAttention
from kdlab.nn.masks import length_mask
from kdlab.nn.positional import RelativePositionalEncoding
from kdlab.nn.subsampling import Conv2dSubsampling4


class FeedForward(nn.Module):
    """Position-wise FFN: ``w_2(dropout(act(w_1 x)))`` (swish in the encoder, ReLU in the decoder)."""

    def __init__(self, d_model: int, ffn_dim: int, dropout: float, activation: nn.Module) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, ffn_dim)
        self.w_2 = nn.Linear(ffn_dim, d_model)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))  # (B, T, D)


class ConvModule(nn.Module):
    """Pointwise d→2d, GLU, depthwise conv (kernel k), BatchNorm, swish, pointwise d→d."""

    def __init__(self, d_model: int, kernel: int) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"cnn_kernel must be odd to keep the frame count, got {kernel}")
        self.pointwise_conv1 = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise_conv = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.norm = nn.BatchNorm1d(d_model)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(d_model, d_model, 1)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), valid (B, T) bool -> (B, T, D)."""
        y = nn.functional.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)  # (B, D, T)
        y = y.masked_fill(~valid.unsqueeze(1), 0.0)  # padding must not leak into the depthwise conv
        y = self.activation(self.norm(self.depthwise_conv(y)))  # (B, D, T)
        return self.pointwise_conv2(y).transpose(1, 2)  # (B, T, D)


class ConformerBlock(nn.Module):
    """One macaron Conformer block with pre-LayerNorm sub-blocks."""

    def __init__(
        self, d_model: int, heads: int, ffn_dim: int, kernel: int, dropout: float, attn_dropout: float
    ):
        super().__init__()
        self.feed_forward_macaron = FeedForward(d_model, ffn_dim, dropout, nn.SiLU())
        self.self_attn = RelPositionMultiHeadAttention(d_model, heads, attn_dropout)
        self.conv_module = ConvModule(d_model, kernel)
        self.feed_forward = FeedForward(d_model, ffn_dim, dropout, nn.SiLU())
        self.norm_ff_macaron = nn.LayerNorm(d_model)
        self.norm_mha = nn.LayerNorm(d_model)
        self.norm_conv = nn.LayerNorm(d_model)
        self.norm_ff = nn.LayerNorm(d_model)
        self.norm_final = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), pos_emb (1, 2T-1, D), valid (B, T) bool -> (B, T, D)."""
        x = x + 0.5 * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        x = x + self.dropout(self.self_attn(self.norm_mha(x), pos_emb, valid.unsqueeze(1)))
        x = x + self.dropout(self.conv_module(self.norm_conv(x), valid))
        x = x + 0.5 * self.dropout(self.feed_forward(self.norm_ff(x)))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    """Conv2d x4 subsampling + relative positional encoding + N Conformer blocks + LayerNorm."""

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
    ) -> None:
        super().__init__()
        self.embed = Conv2dSubsampling4(n_mels, d_model, subsample_channels)
        self.pos_enc = RelativePositionalEncoding(d_model, pos_dropout)
        self.blocks = nn.ModuleList(
            ConformerBlock(d_model, heads, ffn_dim, kernel, dropout, attn_dropout) for _ in range(blocks)
        )
        self.after_norm = nn.LayerNorm(d_model)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F), feat_lens (B,) -> (enc (B, T', D), enc_lens (B,))."""
        enc, lens, _ = self.forward_hidden(feats, feat_lens)
        return enc, lens

    def forward_hidden(
        self, feats: torch.Tensor, feat_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Like ``forward``, plus every block's output: hidden[k] (B, T', D) is block k+1's (before the
        final LayerNorm), for intermediate CTC heads and layer-to-layer KD."""
        x, lens = self.embed(feats, feat_lens)  # (B, T', D)
        valid = length_mask(lens, x.size(1))  # (B, T')
        x, pos_emb = self.pos_enc(x)  # (B, T', D), (1, 2T'-1, D)
        hidden = []
        for block in self.blocks:
            x = block(x, pos_emb, valid)
            hidden.append(x)
        return self.after_norm(x), lens, hidden
