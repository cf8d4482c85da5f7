"""Audio input: any file soundfile can read → mono float32 at the target sample rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlab.errors import UserError

MAX_PEAK = 100.0  # peak sample magnitude (1.0 = full scale) above which audio counts as absurdly loud


class AudioError(UserError, ValueError):
    """An audio file is missing, unreadable, corrupt, empty or has unusable samples; the message names the
    file. ``reason`` is the skip reason validation reports (``unreadable_audio``, ``empty_audio``,
    ``bad_samples``)."""

    def __init__(self, message: str, reason: str = "unreadable_audio") -> None:
        super().__init__(message)
        self.reason = reason


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(sample rate, frames, channels) from the file header; raises :class:`AudioError`."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)", "empty_audio")
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError on bad headers
        raise AudioError(f"{path}: unreadable or corrupt audio ({err})") from err
    if info.frames <= 0:
        raise AudioError(f"{path}: audio has no samples", "empty_audio")
    return int(info.samplerate), int(info.frames), int(info.channels)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode the whole file: (samples (N, C) float32, sample rate); raises :class:`AudioError`."""
    import soundfile as sf

    audio_info(path)  # clear errors for missing / empty / bad-header files
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(f"{path}: corrupt audio, decoding failed ({err})") from err
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples", "empty_audio")
    check_samples(data, path)
    return data, int(sr)


def check_samples(data: np.ndarray, path: str | Path) -> None:
    """Refuse NaN / infinite samples and absurd levels (peak above ``MAX_PEAK`` × full scale), which
    would give non-finite features; raises :class:`AudioError` with reason ``bad_samples``."""
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples", "bad_samples")
    peak = float(np.abs(data).max())
    if peak > MAX_PEAK:
        raise AudioError(f"{path}: absurd audio level (peak {peak:.3g} × full scale, limit {MAX_PEAK:g})",
                         "bad_samples")


def load_audio(path: str | Path, target_sr: int = 16000):  # -> torch.Tensor
    """Mono float32 waveform (N,) at ``target_sr``: stereo is averaged, other rates are resampled.

    Raises :class:`AudioError` (a ``ValueError``) naming the file when it is missing, unreadable,
    corrupt or empty.
    """
    import torch

    data, sr = read_audio(path)  # (N, C)
    wave = torch.from_numpy(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])  # (N,)
    if sr != target_sr:
        import torchaudio.functional as AF

        wave = AF.resample(wave, sr, target_sr)
    if wave.numel() == 0:
        raise AudioError(f"{path}: audio is empty after resampling to {target_sr} Hz", "empty_audio")
    return wave.contiguous()
