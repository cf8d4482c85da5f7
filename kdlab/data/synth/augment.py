"""Acoustic variety for synthesized speech: resampling, additive noise at a given SNR, reverberation.

All functions are pure: randomness comes from the ``numpy.random.Generator`` passed in, so one seed per
utterance makes the audio reproducible whatever process renders it.
"""

from __future__ import annotations

import numpy as np

NOISE_KINDS = ("white", "pink", "babble")


def fast_fft_len(n: int, multiple: int = 1) -> int:
    """Smallest m ≥ n that is ``multiple`` times a 2·3·5-smooth number (fast FFT sizes)."""
    k = -(-n // multiple)
    while True:
        r = k
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return k * multiple
        k += 1


def resample(wave: np.ndarray, orig_sr: int, target_sr: int, rolloff: float = 0.94) -> np.ndarray:
    """Band-limited resampling in the frequency domain. (N,) float32 → (⌈N·target/orig⌉,) float32.

    The input is zero-padded to a whole number of rate periods, its spectrum cut (with a raised-cosine
    taper from ``rolloff``·Nyquist) at the lower Nyquist frequency, and transformed back at the new
    length. Exact for the silence-bounded utterances synthesized here, and far faster than a sinc kernel
    for the 441:320 ratio of 22,050 → 16,000 Hz.
    """
    if orig_sr == target_sr:
        return wave.astype(np.float32)
    g = np.gcd(orig_sr, target_sr)
    up, down = target_sr // g, orig_sr // g
    n_in = fast_fft_len(len(wave), down)  # zero-pad to a multiple of ``down`` with a fast FFT size
    n_out = n_in // down * up
    spec = np.fft.rfft(wave.astype(np.float64), n_in)
    keep = min(len(spec), n_out // 2 + 1)
    spec = spec[:keep].copy()
    edge = int(rolloff * (keep - 1))
    spec[edge:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, keep - edge)))
    out = np.fft.irfft(spec, n_out) * (n_out / n_in)
    return out[: -(-len(wave) * up // down)].astype(np.float32)


def rms(wave: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)) + 1e-12))


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: white noise shaped by 1/sqrt(f) in the frequency domain (power ∝ 1/f)."""
    size = fast_fft_len(n)
    spec = np.fft.rfft(rng.standard_normal(size))
    freqs = np.arange(len(spec), dtype=np.float64)
    freqs[0] = 1.0
    out = np.fft.irfft(spec / np.sqrt(freqs), n=size)[:n]
    return (out / (np.std(out) + 1e-12)).astype(np.float32)


def babble_noise(n: int, bank: list[np.ndarray], rng: np.random.Generator,
                 talkers: tuple[int, int] = (3, 6)) -> np.ndarray:
    """Sum of 3–6 random excerpts of other synthesized speech (``bank``: 16 kHz waves), each looped to n."""
    if not bank:
        raise ValueError("babble noise needs a non-empty bank of speech recordings")
    out = np.zeros(n, dtype=np.float32)
    for _ in range(int(rng.integers(talkers[0], talkers[1] + 1))):
        src = bank[int(rng.integers(len(bank)))]
        start = int(rng.integers(len(src)))
        reps = int(np.ceil((n + start) / len(src)))
        seg = np.tile(src, reps)[start : start + n]
        out += seg / (rms(seg) + 1e-6)
    return out


def add_noise(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Scale ``noise`` so that 10·log10(P_speech / P_noise) = snr_db and add it. (N,) + (N,) → (N,)."""
    if len(noise) != len(speech):
        raise ValueError(f"noise has {len(noise)} samples, speech {len(speech)}")
    gain = rms(speech) / (rms(noise) * 10.0 ** (snr_db / 20.0))
    return (speech + gain * noise).astype(np.float32)


def synthetic_rir(sr: int, rt60: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Exponentially decaying noise tail after a unit direct path.

    Energy falls by 60 dB in ``rt60`` seconds (amplitude envelope exp(−6.91·t/rt60)); ``drr_db`` is the
    direct-to-reverberant energy ratio. Returns h (L,) float32 with h[0] = 1.
    """
    n = max(2, int(rt60 * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    tail[0] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / (np.sum(tail**2) + 1e-12))
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Linear convolution by FFT, cut to the input length (keeps the time axis aligned). (N,) → (N,)."""
    n = len(wave) + len(rir) - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(wave, size) * np.fft.rfft(rir, size), size)[: len(wave)]
    return out.astype(np.float32)


def normalize_level(wave: np.ndarray, target_dbfs: float, peak: float = 0.98) -> np.ndarray:
    """Scale to an RMS of ``target_dbfs`` dB full scale, then limit the peak to ``peak``."""
    out = wave * (10.0 ** (target_dbfs / 20.0) / rms(wave))
    top = float(np.max(np.abs(out))) if len(out) else 0.0
    if top > peak:
        out = out * (peak / top)
    return out.astype(np.float32)
