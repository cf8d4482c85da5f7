"""CTC head and losses (eq 3).

Reduction, as in ESPnet: ``ctc_loss`` is the sum of per-utterance negative log-likelihoods divided by the
batch size (not by the number of frames or tokens).  ``zero_infinity`` is off, and impossible alignments
(fewer frames than the target needs) are rejected up front with an error naming the batch items.
"""

from __future__ import annotations

import torch
from torch import nn

from kdlab.nn.masks import length_mask
from kdlab.tokens import BLANK


class CTCHead(nn.Module):
    """``Linear(d → V)`` followed by log-softmax over the vocabulary (blank = id 0)."""

    def __init__(self, d_model: int, vocab_size: int) -> None:
        super().__init__()
        self.ctc_lo = nn.Linear(d_model, vocab_size)

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        """enc (B, T', D) -> log-probs (B, T', V)."""
        return torch.log_softmax(self.ctc_lo(enc), dim=-1)


def frames_needed(targets: torch.Tensor, target_lens: torch.Tensor) -> torch.Tensor:
    """Minimum CTC input length per row: L plus one blank between each pair of equal neighbours. (B,)"""
    valid = length_mask(target_lens, targets.size(1))  # (B, L)
    repeats = (targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]  # (B, L-1)
    return target_lens + repeats.sum(dim=1)


def check_ctc_inputs(enc_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the batch items whose targets are malformed or too long for CTC."""
    valid = length_mask(target_lens, targets.size(1)) if targets.numel() else targets.bool()
    blanks = ((targets == BLANK) | (targets < 0)) & valid
    bad = blanks.any(dim=1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"CTC targets of batch items {bad} contain blank (0) or negative ids inside their length"
        )
    need = frames_needed(targets, target_lens) if targets.numel() else target_lens
    short = (need > enc_lens).nonzero().flatten().tolist()
    if short:
        raise ValueError(
            f"batch items {short}: {enc_lens[short].tolist()} encoder frames cannot align "
            f"{need[short].tolist()} CTC labels (utterance too short for its transcript)"
        )


def ctc_loss_per_utt(
    ctc_logp: torch.Tensor, enc_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor
) -> torch.Tensor:
    """-log p_ctc(y | X) of eq 3 for every utterance: (B, T', V), (B,), (B, L), (B,) -> (B,)."""
    check_ctc_inputs(enc_lens, targets, target_lens)
    padded = targets.clamp(min=0)  # padding (IGNORE_ID) lies beyond target_lens and is never read
    return nn.functional.ctc_loss(
        ctc_logp.transpose(0, 1),  # (T', B, V)
        padded,
        enc_lens,
        target_lens,
        blank=BLANK,
        reduction="none",
        zero_infinity=False,
    )


def ctc_loss(
    ctc_logp: torch.Tensor, enc_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor
) -> torch.Tensor:
    """L_ctc: per-utterance NLL summed over the batch and divided by the batch size (scalar)."""
    return ctc_loss_per_utt(ctc_logp, enc_lens, targets, target_lens).sum() / ctc_logp.size(0)
