"""Conv2d front end that subsamples time by 4 (ESPnet2 ``Conv2dSubsampling`` layout)."""

from __future__ import annotations

import torch
from torch import nn

from kdlab.nn.masks import subsampled_lengths

SUBSAMPLING = 4  # input frames per encoder frame, of every kdlab model


class Conv2dSubsampling4(nn.Module):
    """Two Conv2d(kernel 3, stride 2) + ReLU, then Linear(c * F' -> d); ``c`` channels (ESPnet: c = d).

    Input (B, T, F) -> output (B, T', d) with T' = ((T - 1) // 2 - 1) // 2 and F' = ((F - 1) // 2 - 1) // 2
    (19 for 80 mels).  Output frame t only sees input frames 4t … 4t + 6, all inside the utterance, so
    padding in the input never reaches a valid output frame.
    """

    def __init__(self, n_mels: int, d_model: int, channels: int = 0) -> None:
        super().__init__()
        c = channels or d_model  # ESPnet: d_model channels; fewer cut the cost of the second conv by (c/d)^2
        self.conv = nn.Sequential(nn.Conv2d(1, c, 3, 2), nn.ReLU(), nn.Conv2d(c, c, 3, 2), nn.ReLU())
        self.freq_out = ((n_mels - 1) // 2 - 1) // 2
        if self.freq_out < 1:
            raise ValueError(f"n_mels={n_mels} is too small for Conv2d x4 subsampling (need >= 7)")
        self.out = nn.Linear(c * self.freq_out, d_model)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F), feat_lens (B,) -> (x (B, T', d), lens (B,))."""
        short = (feat_lens < 7).nonzero().flatten().tolist()
        if short:
            raise ValueError(
                f"batch items {short} have fewer than 7 frames ({feat_lens[short].tolist()}); "
                "Conv2d x4 subsampling needs at least 7"
            )
        if int(feat_lens.max()) > feats.size(1):
            raise ValueError(
                f"feat_lens max {int(feat_lens.max())} exceeds the feature length {feats.size(1)}"
            )
        x = self.conv(feats.unsqueeze(1))  # (B, d, T', F')
        b, c, t, f = x.shape
        x = self.out(x.transpose(1, 2).reshape(b, t, c * f))  # (B, T', d)
        return x, subsampled_lengths(feat_lens)
