"""Voice and channel augmentation of training features, on the raw log-mel fbank (before CMVN).

Everything works on the cached filterbank, so it costs a few element-wise operations per utterance and
keeps the feature cache valid:

- **VTLP** (vocal-tract length perturbation, Jaitly & Hinton 2013): the spectrum is read at f/α, so every
  formant moves by the warp factor α — a different speaker's vocal tract;
- **band limit**: the mel bands above a cut-off (4 kHz: speech that went through an 8 kHz telephone or
  an 8 kHz synthesizer) drop to the utterance's floor;
- **noise** at an SNR, added in the power domain of the mel bands (white: flat per Hz; pink: 1/f);
- **reverberation**: each band's power envelope convolved with an exponential decay of the given RT60
  (the late tail of a room), the direct sound kept DRR dB above it.

Log-mel is the natural log of mel-band power (``compute_fbank``), so power = exp(feats).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kdlab.data.features import FRAME_SHIFT_S, SAMPLE_RATE

MEL_LOW_HZ = 20.0  # Kaldi's default low_freq; high_freq = Nyquist


@dataclass(frozen=True)
class VoiceAugConfig:
    """Per-utterance probabilities and ranges; all off by default (the fields of ``data.voice_aug``)."""

    vtlp: tuple[float, float] | None = None  # warp factor α ~ U[low, high], e.g. (0.9, 1.1)
    p_band_limit: float = 0.0
    band_limit_hz: tuple[float, float] = (3400.0, 4000.0)  # cut-off ~ U[low, high]
    p_noise: float = 0.0
    snr_db: tuple[float, float] = (10.0, 30.0)
    p_reverb: float = 0.0
    rt60_s: tuple[float, float] = (0.2, 0.6)
    drr_db: tuple[float, float] = (0.0, 10.0)

    @property
    def active(self) -> bool:
        return bool(self.vtlp) or max(self.p_band_limit, self.p_noise, self.p_reverb) > 0


def mel(hz: torch.Tensor | float) -> torch.Tensor:
    """Kaldi's mel scale, 1127 ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_centres(num_bins: int, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Centre frequency (Hz) of each of Kaldi's mel bins: (D,)."""
    low, high = mel(MEL_LOW_HZ), mel(sample_rate / 2)
    m = low + (high - low) * torch.arange(1, num_bins + 1, dtype=torch.float64) / (num_bins + 1)
    return 700.0 * torch.expm1(m / 1127.0)


def _bin_position(hz: torch.Tensor, num_bins: int, sample_rate: int) -> torch.Tensor:
    """Fractional bin index of frequencies ``hz`` (inverse of :func:`mel_centres`)."""
    low, high = mel(MEL_LOW_HZ), mel(sample_rate / 2)
    return (mel(hz) - low) / (high - low) * (num_bins + 1) - 1


def vtlp(feats: torch.Tensor, alpha: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Warp the frequency axis: out(f) = in(f / α), read by linear interpolation between bins. (T, D) → (T, D).

    α > 1 moves formants up (a shorter vocal tract); bands read from beyond the edges take the edge band.
    """
    d = feats.shape[1]
    pos = _bin_position(mel_centres(d, sample_rate) / alpha, d, sample_rate).clamp(0, d - 1)  # (D,)
    lo = pos.floor().long().clamp(max=d - 2)
    frac = (pos - lo).to(feats.dtype)
    return feats[:, lo] * (1 - frac) + feats[:, lo + 1] * frac


def band_limit(feats: torch.Tensor, cutoff_hz: float, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Bands centred above ``cutoff_hz`` fall to the utterance's lowest band energy. (T, D) → (T, D)."""
    above = mel_centres(feats.shape[1], sample_rate) > cutoff_hz  # (D,)
    out = feats.clone()
    out[:, above] = feats.min()
    return out


def noise_shape(num_bins: int, colour: str, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Relative noise power per mel band (sums to 1): band width × spectral density. (D,)"""
    edges = 700.0 * torch.expm1(torch.linspace(float(mel(MEL_LOW_HZ)), float(mel(sample_rate / 2)),
                                               num_bins + 2, dtype=torch.float64) / 1127.0)
    width = edges[2:] - edges[:-2]  # each triangular filter spans two neighbouring intervals
    power = width / mel_centres(num_bins, sample_rate) if colour == "pink" else width
    return (power / power.sum()).float()


def add_noise(feats: torch.Tensor, snr_db: float, colour: str, gen: torch.Generator,
              sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Stationary noise at ``snr_db`` against the utterance's mean band power. (T, D) → (T, D)."""
    power = feats.double().exp()  # (T, D)
    total = power.sum(dim=1).mean() / 10 ** (snr_db / 10)  # noise power per frame
    shape = noise_shape(feats.shape[1], colour, sample_rate).double()  # (D,)
    # a periodogram of noise fluctuates: chi-square with a few degrees of freedom per band and frame
    jitter = _gamma(feats.shape, gen)  # (T, D)
    return torch.log(power + total * shape * jitter).to(feats.dtype)


def _gamma(shape: torch.Size, gen: torch.Generator, k: int = 4) -> torch.Tensor:
    """Gamma(k, k) samples (mean 1): the mean of k unit exponentials, drawn from ``gen``."""
    u = torch.rand((k, *shape), generator=gen, dtype=torch.float64).clamp_min(1e-12)
    return -torch.log(u).mean(dim=0)


def reverberate(feats: torch.Tensor, rt60_s: float, drr_db: float) -> torch.Tensor:
    """Each band's power plus its exponentially decaying tail (−60 dB after ``rt60_s``). (T, D) → (T, D)."""
    power = feats.double().exp()  # (T, D)
    n = max(2, int(rt60_s / FRAME_SHIFT_S))
    decay = torch.exp(-math.log(1000.0) * torch.arange(1, n + 1, dtype=torch.float64) * FRAME_SHIFT_S / rt60_s)
    tail_gain = 10 ** (-drr_db / 10) / decay.sum()  # the tail carries 1/DRR of the direct energy
    padded = torch.nn.functional.pad(power.T.unsqueeze(1), (n, 0))  # (D, 1, n + T)
    kernel = torch.cat([decay.flip(0), torch.zeros(1, dtype=torch.float64)]).view(1, 1, -1)  # past frames only
    tail = torch.nn.functional.conv1d(padded, kernel)[:, 0, : power.shape[0]].T  # (T, D)
    return torch.log(power + tail_gain * tail).to(feats.dtype)


def _uniform(low: float, high: float, gen: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def _chance(p: float, gen: torch.Generator) -> bool:
    return p > 0 and float(torch.rand((), generator=gen)) < p


def apply(feats: torch.Tensor, cfg: VoiceAugConfig, gen: torch.Generator,
          sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """One utterance's draw of every active augmentation, in the order voice → room → channel → noise."""
    if cfg.vtlp:
        feats = vtlp(feats, _uniform(*cfg.vtlp, gen), sample_rate)
    if _chance(cfg.p_reverb, gen):
        feats = reverberate(feats, _uniform(*cfg.rt60_s, gen), _uniform(*cfg.drr_db, gen))
    if _chance(cfg.p_band_limit, gen):
        feats = band_limit(feats, _uniform(*cfg.band_limit_hz, gen), sample_rate)
    if _chance(cfg.p_noise, gen):
        colour = "pink" if float(torch.rand((), generator=gen)) < 0.5 else "white"
        feats = add_noise(feats, _uniform(*cfg.snr_db, gen), colour, gen, sample_rate)
    return feats
