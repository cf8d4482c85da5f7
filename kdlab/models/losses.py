"""Label-smoothed cross entropy for the attention (eq 2) and MLM (eq 4) decoders, and token accuracy."""

from __future__ import annotations

import torch

from kdlab.tokens import IGNORE_ID


def smoothed_targets(targets: torch.Tensor, vocab_size: int, smoothing: float) -> torch.Tensor:
    """(N,) ids -> (N, V) distribution: 1 - smoothing on the target, smoothing / (V - 1) elsewhere."""
    dist = torch.full((targets.numel(), vocab_size), smoothing / (vocab_size - 1), device=targets.device)
    return dist.scatter_(1, targets.unsqueeze(1), 1.0 - smoothing)


def label_smoothing_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """KL(smoothed targets || softmax(logits)) summed over non-ignored positions, divided by the batch size.

    logits (B, L, V), targets (B, L) with ``IGNORE_ID`` for positions that carry no loss.  This is ESPnet's
    ``LabelSmoothingLoss`` with ``normalize_length=False``; with ``smoothing=0`` it is plain cross entropy.
    """
    keep = targets != IGNORE_ID  # (B, L)
    logp = torch.log_softmax(logits[keep].float(), dim=-1)  # (N, V)
    target_dist = smoothed_targets(targets[keep], logits.size(-1), smoothing)  # (N, V)
    kl = torch.xlogy(target_dist, target_dist) - target_dist * logp  # (N, V)
    return kl.sum() / logits.size(0)


def token_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of non-ignored positions whose argmax equals the target (0.0 when there are none)."""
    keep = targets != IGNORE_ID
    total = int(keep.sum())
    if total == 0:
        return 0.0
    return float((logits.argmax(dim=-1)[keep] == targets[keep]).sum()) / total
