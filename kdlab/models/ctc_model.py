"""CTC student (kind ``"ctc"``): Conformer encoder + CTC head, optionally with intermediate CTC heads.

Intermediate heads follow InterCTC (Lee & Watanabe 2021), the student of Inter-KD (Yoon et al. 2022):
the output of encoder block k goes through one shared LayerNorm and the model's own CTC projection, and

    L = (1 − w)·L_ctc + w·mean_k L_ctc,k            (w = ``inter_ctc_weight``; L_ctc of eq 3)

With ``chunk_size > 0`` the encoder is streaming (chunk-based attention, causal convolution).

Auxiliary branches (``aux_layers``; the streaming student of Shim et al. 2023): after each listed encoder
block k, an :class:`AuxBranch` (one *full-context* Conformer block on block k's streaming output, then
Linear(d → ``aux_out_dim``)) gives a non-streaming view that layer-to-layer KD matches to a teacher layer,
and an APC head (Linear(d → ``aux_out_dim``) on block k's streaming output) predicts a target n frames
ahead (autoregressive predictive coding, Chung et al. 2019). Both are training-only: ``encode`` and every
decoder ignore them. Losses: ``kdlab/kd/layer.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from kdlab.models.base import JointCTCModel, check_targets
from kdlab.models.config import ModelConfig
from kdlab.models.ctc import ctc_loss
from kdlab.nn.conformer import ConformerBlock
from kdlab.nn.masks import length_mask


class AuxBranch(nn.Module):
    """Auxiliary non-streaming layer (Shim et al. 2023): one full-context Conformer block (symmetric
    convolution, attention over the whole utterance) on a streaming block's output, then Linear(d → d_t)."""

    def __init__(self, cfg: ModelConfig, out_dim: int) -> None:
        super().__init__()
        self.block = ConformerBlock(cfg.d_model, cfg.heads, cfg.ffn_dim, cfg.cnn_kernel, cfg.dropout,
                                    cfg.attn_dropout, causal=False)
        self.proj = nn.Linear(cfg.d_model, out_dim)

    def forward(self, h: torch.Tensor, pos_emb: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """h (B, T', D) streaming block output, pos_emb (1, 2T'-1, D), valid (B, T') -> (B, T', d_t)."""
        return self.proj(self.block(h, pos_emb, valid))


class CTCModel(JointCTCModel):
    """Encoder + CTC (eq 3) + intermediate CTC heads at ``cfg.inter_ctc_layers`` (1-based blocks)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        self.inter_layers = list(cfg.inter_ctc_layers)
        self.inter_norm = nn.LayerNorm(cfg.d_model) if self.inter_layers else None
        self.aux_layers = list(cfg.aux_layers)
        out_dim = cfg.aux_out_dim or cfg.d_model
        self.aux = nn.ModuleList(AuxBranch(cfg, out_dim) for _ in self.aux_layers)
        self.apc = nn.ModuleList(nn.Linear(cfg.d_model, out_dim) for _ in self.aux_layers)

    def aux_outputs(self, hidden: list[torch.Tensor], enc_lens: torch.Tensor
                    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Block outputs hidden[k] (B, T', D) -> (aux branch outputs, APC predictions), each a list of
        (B, T', d_t) in ``aux_layers`` order."""
        picked = [hidden[k - 1] for k in self.aux_layers]
        valid = length_mask(enc_lens, picked[0].size(1))  # (B, T')
        pos_emb = self.encoder.relative_positions(picked[0])  # (1, 2T'-1, D)
        aux = [branch(h, pos_emb, valid) for branch, h in zip(self.aux, picked, strict=True)]
        apc = [head(h) for head, h in zip(self.apc, picked, strict=True)]
        return aux, apc

    def inter_log_probs(self, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """Block outputs hidden[k] (B, T', D) -> log-probs (B, T', V) of each intermediate head, in
        ``inter_ctc_layers`` order (shared LayerNorm and CTC projection)."""
        return [self.ctc(self.inter_norm(hidden[k - 1])) for k in self.inter_layers]

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor
    ) -> dict[str, torch.Tensor | list]:
        """Losses ``loss``, ``loss_ctc`` (final head), ``loss_inter`` (mean over intermediate heads, when
        any) and intermediates ``enc``, ``enc_lens``, ``ctc_logp`` (B, T', V), ``inter_logp`` (list of
        (B, T', V)), ``hidden`` (every block's output, (B, T', D) each); with ``aux_layers`` also ``aux``
        and ``apc`` (lists of (B, T', d_t), see :meth:`aux_outputs`)."""
        check_targets(tokens, token_lens, self.vocab_size)
        if feats.dim() != 3 or feats.size(-1) != self.cfg.n_mels:
            raise ValueError(f"feats must be (B, T, {self.cfg.n_mels}), got {tuple(feats.shape)}")
        enc, enc_lens, hidden = self.encoder.forward_hidden(feats, feat_lens)
        ctc_logp = self.ctc_log_probs(enc)  # (B, T', V)
        out: dict = {"enc": enc, "enc_lens": enc_lens, "ctc_logp": ctc_logp, "hidden": hidden,
                     "loss_ctc": ctc_loss(ctc_logp, enc_lens, tokens, token_lens)}
        out["inter_logp"] = self.inter_log_probs(hidden) if self.inter_layers else []
        if self.aux_layers:
            out["aux"], out["apc"] = self.aux_outputs(hidden, enc_lens)
        out["loss"] = out["loss_ctc"]
        if out["inter_logp"]:
            inter = [ctc_loss(lp, enc_lens, tokens, token_lens) for lp in out["inter_logp"]]
            out["loss_inter"] = torch.stack(inter).mean()
            w = self.cfg.inter_ctc_weight
            out["loss"] = (1.0 - w) * out["loss_ctc"] + w * out["loss_inter"]
        return out
