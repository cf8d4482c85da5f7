"""CTC student (kind ``"ctc"``): Conformer encoder + CTC head, optionally with intermediate CTC heads.

Intermediate heads follow InterCTC (Lee & Watanabe 2021), the student of Inter-KD (Yoon et al. 2022):
the output of encoder block k goes through one shared LayerNorm and the model's own CTC projection, and

    L = (1 − w)·L_ctc + w·mean_k L_ctc,k            (w = ``inter_ctc_weight``; L_ctc of eq 3)

With ``chunk_size > 0`` the encoder is streaming (chunk-based attention, causal convolution).
"""

from __future__ import annotations

import torch
from torch import nn

from kdlab.models.base import JointCTCModel, check_targets
from kdlab.models.config import ModelConfig
from kdlab.models.ctc import ctc_loss


class CTCModel(JointCTCModel):
    """Encoder + CTC (eq 3) + intermediate CTC heads at ``cfg.inter_ctc_layers`` (1-based blocks)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        self.inter_layers = list(cfg.inter_ctc_layers)
        self.inter_norm = nn.LayerNorm(cfg.d_model) if self.inter_layers else None

    def inter_log_probs(self, hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """Block outputs hidden[k] (B, T', D) -> log-probs (B, T', V) of each intermediate head, in
        ``inter_ctc_layers`` order (shared LayerNorm and CTC projection)."""
        return [self.ctc(self.inter_norm(hidden[k - 1])) for k in self.inter_layers]

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor
    ) -> dict[str, torch.Tensor | list]:
        """Losses ``loss``, ``loss_ctc`` (final head), ``loss_inter`` (mean over intermediate heads, when
        any) and intermediates ``enc``, ``enc_lens``, ``ctc_logp`` (B, T', V), ``inter_logp`` (list of
        (B, T', V)), ``hidden`` (every block's output, (B, T', D) each)."""
        check_targets(tokens, token_lens, self.vocab_size)
        if feats.dim() != 3 or feats.size(-1) != self.cfg.n_mels:
            raise ValueError(f"feats must be (B, T, {self.cfg.n_mels}), got {tuple(feats.shape)}")
        enc, enc_lens, hidden = self.encoder.forward_hidden(feats, feat_lens)
        ctc_logp = self.ctc_log_probs(enc)  # (B, T', V)
        out: dict = {"enc": enc, "enc_lens": enc_lens, "ctc_logp": ctc_logp, "hidden": hidden,
                     "loss_ctc": ctc_loss(ctc_logp, enc_lens, tokens, token_lens)}
        out["inter_logp"] = self.inter_log_probs(hidden) if self.inter_layers else []
        out["loss"] = out["loss_ctc"]
        if out["inter_logp"]:
            inter = [ctc_loss(lp, enc_lens, tokens, token_lens) for lp in out["inter_logp"]]
            out["loss_inter"] = torch.stack(inter).mean()
            w = self.cfg.inter_ctc_weight
            out["loss"] = (1.0 - w) * out["loss_ctc"] + w * out["loss_inter"]
        return out
