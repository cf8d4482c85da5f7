"""One utterance through a model: features, encoder output and CTC posteriors (eq 1-3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlab.data.features import FRAME_SHIFT_S, compute_fbank
from kdlab.explore.model import LoadedModel
from kdlab.explore.utterance import Utterance


@dataclass
class Outputs:
    """``fbank`` (T, 80) log-mel before CMVN (for display); ``enc`` (T', D); ``ctc_logp`` (T', V)."""

    fbank: torch.Tensor  # (T, 80)
    enc: torch.Tensor  # (T', D)
    ctc_logp: torch.Tensor  # (T', V)

    @property
    def subsampling(self) -> int:
        """Feature frames per encoder frame (≈ 4: T' = ((T−1)//2−1)//2)."""
        return max(1, round(self.fbank.size(0) / max(self.enc.size(0), 1)))

    @property
    def frame_s(self) -> float:
        """Seconds per encoder (CTC) frame."""
        return FRAME_SHIFT_S * self.subsampling

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(enc (1, T', D), enc_lens (1,), ctc_logp (1, T', V))`` for the batched searches."""
        return self.enc.unsqueeze(0), torch.tensor([self.enc.size(0)]), self.ctc_logp.unsqueeze(0)


def model_features(m: LoadedModel, utt: Utterance) -> torch.Tensor:
    """The utterance's fbank normalised with the model's CMVN: the model's input, (T, 80)."""
    return m.cmvn(compute_fbank(utt.audio, name=utt.id))


def run_encoder(m: LoadedModel, utt: Utterance) -> Outputs:
    """Fbank → CMVN → encoder → CTC log-posteriors of one utterance (no grad)."""
    fbank = compute_fbank(utt.audio, name=utt.id)  # (T, 80)
    feats = m.cmvn(fbank).unsqueeze(0)  # (1, T, 80)
    with torch.inference_mode():
        enc, enc_lens = m.model.encode(feats, torch.tensor([feats.size(1)]))  # (1, T', D)
        ctc_logp = m.model.ctc_log_probs(enc)  # (1, T', V)
    n = int(enc_lens[0])
    return Outputs(fbank, enc[0, :n], ctc_logp[0, :n])
