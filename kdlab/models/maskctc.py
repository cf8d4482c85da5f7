"""NAR student: Mask-CTC = Conformer encoder + CTC + bidirectional CMLM decoder (eq 3, 4, 6)."""

from __future__ import annotations

import torch

from kdlab.models.base import JointCTCModel, make_decoder
from kdlab.models.config import ModelConfig
from kdlab.models.losses import label_smoothing_loss, token_accuracy
from kdlab.nn.masks import length_mask
from kdlab.tokens import IGNORE_ID, MASK


def sample_mlm_mask(
    token_lens: torch.Tensor, max_len: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Choose, per utterance of length n >= 1, k ~ U{1..n} **distinct** positions to mask. -> (B, L) bool.

    Positions are ranked by i.i.d. uniform scores (padding forced last) and the k lowest ranks are masked,
    i.e. sampling without replacement.  Empty targets get no mask.
    """
    device = generator.device if generator is not None else token_lens.device
    lens = token_lens.to(device)
    valid = length_mask(lens, max_len)  # (B, L)
    scores = torch.rand(lens.size(0), max_len, generator=generator, device=device).masked_fill(~valid, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # (B, L) rank of each position
    u = torch.rand(lens.size(0), generator=generator, device=device)  # (B,)
    k = (u * lens).floor().long() + 1  # (B,) uniform on 1..n
    mask = (ranks < k.unsqueeze(1)) & valid
    return mask.to(token_lens.device)


class MaskCTCModel(JointCTCModel):
    """Joint CTC/CMLM model; ``L = α·L_ctc + (1−α)·L_mlm`` (eq 4, 6), L_mlm on masked positions only."""

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        self.decoder = make_decoder(cfg, vocab_size, causal=False)

    def mlm_logits(
        self, enc: torch.Tensor | None, enc_lens: torch.Tensor | None, ys_in: torch.Tensor, ys_lens: torch.Tensor,
        sources: list | None = None, positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """p_mlm(y | y_obs, H) of eq 4 as logits: ys_in (B, L), ``<mask>`` at hidden slots -> (B, L, V).

        ``sources``: the decoder's projected encoder output (``self.decoder.sources``), one row per row of
        ``ys_in``, in place of enc/enc_lens (decoding reuses it across Mask-CTC iterations).
        ``positions`` (B, Q): only the logits at these slots, (B, Q, V) (the decoding searches read the
        masked slots only).
        """
        return self.decoder(ys_in, ys_lens, enc, enc_lens, sources, positions)

    def forward(
        self,
        feats: torch.Tensor,
        feat_lens: torch.Tensor,
        tokens: torch.Tensor,
        token_lens: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor | float]:
        """Losses ``loss`` (eq 6), ``loss_ctc``, ``loss_att`` (= L_mlm), ``acc`` (masked positions) and the
        intermediates, including ``dec_in`` (B, L; ``<mask>`` at masked slots, ``IGNORE_ID`` padding) and
        ``mask`` (B, L) bool.  ``generator`` makes the masking reproducible.
        """
        out: dict = self.encode_and_ctc(feats, feat_lens, tokens, token_lens)
        valid = length_mask(token_lens, tokens.size(1))  # (B, L)
        mask = sample_mlm_mask(token_lens, tokens.size(1), generator)  # (B, L)
        dec_in = tokens.masked_fill(~valid, IGNORE_ID).masked_fill(mask, MASK)
        dec_logits = self.mlm_logits(out["enc"], out["enc_lens"], dec_in, token_lens)  # (B, L, V)
        targets = tokens.masked_fill(~mask, IGNORE_ID)  # loss only where masked
        loss_att = label_smoothing_loss(dec_logits, targets, self.cfg.lsm_weight)
        out.update(
            dec_logits=dec_logits,
            dec_in=dec_in,
            mask=mask,
            loss_att=loss_att,
            acc=token_accuracy(dec_logits, targets),
            loss=self.joint_loss(out["loss_ctc"], loss_att),
        )
        return out
