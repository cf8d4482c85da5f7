"""AR teacher: Conformer encoder + CTC + causal Transformer decoder (eq 1–3, 6)."""

from __future__ import annotations

import torch

from kdlab.models.base import JointCTCModel, make_decoder
from kdlab.models.config import ModelConfig
from kdlab.models.losses import label_smoothing_loss, token_accuracy
from kdlab.nn.decoder import LayerCache, select_cache
from kdlab.nn.masks import length_mask
from kdlab.tokens import IGNORE_ID, SOS_EOS


def add_sos_eos(tokens: torch.Tensor, token_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder input ``[sos] + y`` and output ``y + [eos]``, both (B, L+1) padded with ``IGNORE_ID``."""
    b, length = tokens.shape
    valid = length_mask(token_lens, length)  # (B, L)
    body = tokens.masked_fill(~valid, IGNORE_ID)
    sos = torch.full((b, 1), SOS_EOS, dtype=tokens.dtype, device=tokens.device)
    pad = torch.full((b, 1), IGNORE_ID, dtype=tokens.dtype, device=tokens.device)
    ys_in = torch.cat([sos, body], dim=1)  # (B, L+1)
    ys_out = torch.cat([body, pad], dim=1)  # (B, L+1)
    ys_out[torch.arange(b, device=tokens.device), token_lens] = SOS_EOS
    return ys_in, ys_out


class ARModel(JointCTCModel):
    """Joint CTC/attention AR model; ``L = α·L_ctc + (1−α)·L_att`` (eq 6) with label smoothing."""

    select_cache = staticmethod(select_cache)  # reorder a decoder_step cache: (cache, index (N',)) -> cache

    def __init__(self, cfg: ModelConfig, vocab_size: int) -> None:
        super().__init__(cfg, vocab_size)
        self.decoder = make_decoder(cfg, vocab_size, causal=True)

    def decoder_logits(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, ys_in: torch.Tensor, ys_in_lens: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: ys_in (B, L) starting with ``<sos/eos>`` -> logits (B, L, V) of eq 1."""
        return self.decoder(ys_in, ys_in_lens, enc, enc_lens)

    def decoder_step(
        self, ys: torch.Tensor, enc: torch.Tensor, enc_lens: torch.Tensor, cache: list[LayerCache] | None
    ) -> tuple[torch.Tensor, list[LayerCache]]:
        """Incremental decoding: prefixes ys (N, l) -> (log p(y_{l+1} | y_≤l, X) (N, V), cache).

        Pass ``cache=None`` first; afterwards pass the returned cache with the prefix grown by one token.
        Reorder it for beam search with ``ARModel.select_cache(cache, index)``.
        """
        logits, cache = self.decoder.step(ys, enc, enc_lens, cache)
        return torch.log_softmax(logits, dim=-1), cache

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor
    ) -> dict[str, torch.Tensor | float]:
        """Losses ``loss`` (eq 6), ``loss_ctc``, ``loss_att``, ``acc`` and the intermediates.

        Also returns ``ys_in`` / ``ys_out`` (B, L+1): decoder input and target (``y + [eos]``).
        """
        out: dict = self.encode_and_ctc(feats, feat_lens, tokens, token_lens)
        ys_in, ys_out = add_sos_eos(tokens, token_lens)
        dec_logits = self.decoder_logits(out["enc"], out["enc_lens"], ys_in, token_lens + 1)  # (B, L+1, V)
        loss_att = label_smoothing_loss(dec_logits, ys_out, self.cfg.lsm_weight)
        out.update(
            dec_logits=dec_logits,
            ys_in=ys_in,
            ys_out=ys_out,
            loss_att=loss_att,
            acc=token_accuracy(dec_logits, ys_out),
            loss=self.joint_loss(out["loss_ctc"], loss_att),
        )
        return out
