"""Audio input: any file soundfile can read → mono float32 at the target sample rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """An audio file is missing, unreadable, corrupt or empty; the message names the file."""


def audio_info(path: str | Path) -> tuple[int, int, int]:
    """(sample rate, frames, channels) from the file header; raises :class:`AudioError`."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError on bad headers
        raise AudioError(f"{path}: unreadable or corrupt audio ({err})") from err
    if info.frames <= 0:
        raise AudioError(f"{path}: audio has no samples")
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
        raise AudioError(f"{path}: audio has no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return data, int(sr)


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
        raise AudioError(f"{path}: audio is empty after resampling to {target_sr} Hz")
    return wave.contiguous()
