"""Shared encoder + CTC part of the joint CTC/attention models (eq 3, 6)."""

from __future__ import annotations

import torch
from torch import nn

from kdlab.models.config import ModelConfig
from kdlab.models.ctc import CTCHead, ctc_loss
from kdlab.nn.conformer import ConformerEncoder
from kdlab.nn.decoder import TransformerDecoder
from kdlab.nn.masks import length_mask
from kdlab.tokens import BLANK, MASK, NUM_SPECIAL, SOS_EOS


def check_targets(tokens: torch.Tensor, token_lens: torch.Tensor, vocab_size: int) -> None:
    """Raise ``ValueError`` naming batch items whose tokens (inside their length) are not regular ids.

    Allowed inside the length: ``<unk>`` and regular tokens; not blank, ``<sos/eos>``, ``<mask>`` or ids >= V.
    """
    if tokens.dim() != 2 or token_lens.dim() != 1 or tokens.size(0) != token_lens.size(0):
        raise ValueError(
            f"tokens must be (B, L) and token_lens (B,), got {tuple(tokens.shape)}, {tuple(token_lens.shape)}"
        )
    if (token_lens > tokens.size(1)).any() or (token_lens < 0).any():
        bad = ((token_lens > tokens.size(1)) | (token_lens < 0)).nonzero().flatten().tolist()
        raise ValueError(f"batch items {bad}: token_lens outside [0, {tokens.size(1)}]")
    valid = length_mask(token_lens, tokens.size(1))
    special = (
        (tokens == BLANK) | (tokens == SOS_EOS) | (tokens == MASK) | (tokens < 0) | (tokens >= vocab_size)
    )
    bad = (special & valid).any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"batch items {bad}: target tokens must be <unk> (1) "
            f"or regular ids in [{NUM_SPECIAL}, {vocab_size})"
        )


def make_decoder(cfg: ModelConfig, vocab_size: int, causal: bool) -> TransformerDecoder:
    """The Transformer decoder of ``cfg``: causal for the AR model (eq 1–2), bidirectional CMLM (eq 4)."""
    return TransformerDecoder(
        vocab_size=vocab_size, d_model=cfg.d_model, heads=cfg.heads, ffn_dim=cfg.ffn_dim, blocks=cfg.dec_blocks,
        dropout=cfg.dropout, pos_dropout=cfg.pos_dropout, attn_dropout=cfg.attn_dropout,
        causal=causal, rel_pos=cfg.cmlm_rel_pos and not causal, abs_pos=cfg.cmlm_abs_pos and not causal,
        embed_std=None if causal else cfg.cmlm_embed_std or None,
    )


class JointCTCModel(nn.Module):
    """Conformer encoder + CTC head; subclasses add the attention decoder and eq 6."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        if vocab_size <= NUM_SPECIAL:
            raise ValueError(f"vocab_size={vocab_size} must exceed the {NUM_SPECIAL} special tokens")
        self.cfg, self.vocab_size = cfg, vocab_size
        self.encoder = ConformerEncoder(
            n_mels=cfg.n_mels, d_model=cfg.d_model, heads=cfg.heads, ffn_dim=cfg.ffn_dim, blocks=cfg.enc_blocks,
            kernel=cfg.cnn_kernel, dropout=cfg.dropout, pos_dropout=cfg.pos_dropout,
            attn_dropout=cfg.attn_dropout, subsample_channels=cfg.subsample_channels,
            chunk_size=cfg.chunk_size, left_chunks=cfg.left_chunks,
        )
        self.ctc = CTCHead(cfg.d_model, vocab_size)

    def encode(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, n_mels), feat_lens (B,) -> (enc (B, T', D), enc_lens (B,))."""
        if feats.dim() != 3 or feats.size(-1) != self.cfg.n_mels:
            raise ValueError(f"feats must be (B, T, {self.cfg.n_mels}), got {tuple(feats.shape)}")
        return self.encoder(feats, feat_lens)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """enc (B, T', D) -> CTC log-probabilities (B, T', V)."""
        return self.ctc(enc)

    def encode_and_ctc(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Common first half of ``forward``: encoder, CTC posteriors and L_ctc."""
        check_targets(tokens, token_lens, self.vocab_size)
        enc, enc_lens = self.encode(feats, feat_lens)
        ctc_logp = self.ctc_log_probs(enc)
        return {
            "enc": enc,
            "enc_lens": enc_lens,
            "ctc_logp": ctc_logp,
            "loss_ctc": ctc_loss(ctc_logp, enc_lens, tokens, token_lens),
        }

    def joint_loss(self, loss_ctc: torch.Tensor, loss_att: torch.Tensor) -> torch.Tensor:
        """Eq 6: alpha * L_ctc + (1 - alpha) * L_att."""
        alpha = self.cfg.ctc_weight
        return alpha * loss_ctc + (1.0 - alpha) * loss_att
