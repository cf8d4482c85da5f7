"""A small ctypes binding to libespeak-ng as shipped by the PyPI package ``espeakng-loader``.

One :class:`Espeak` object per process (libespeak-ng keeps global state). Synthesis is synchronous:
``espeak_Synth`` calls our callback with 16-bit samples at 22,050 Hz until the text is done.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAM_RATE = 1
PARAM_PITCH = 3
PARAM_RANGE = 4
ESPEAK_SAMPLE_RATE = 22050

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)  # (wav, n, events)


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded, or refused a voice or a text."""


class Espeak:
    """Process-wide handle on libespeak-ng. Not thread-safe: use one per worker process."""

    _instance: Espeak | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as err:  # pragma: no cover - dependency of the package
            raise EspeakError("the PyPI package 'espeakng-loader' is required for synthesis") from err
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate != ESPEAK_SAMPLE_RATE:
            raise EspeakError(f"espeak_Initialize returned {rate}, expected {ESPEAK_SAMPLE_RATE} Hz")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self._voice: str | None = None

    @classmethod
    def get(cls) -> Espeak:
        """The process's single engine, created on first use."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = Espeak()
            return cls._instance

    def _collect(self, wav, n: int, events) -> int:  # noqa: ANN001 - ctypes pointers
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def set_voice(self, voice: str) -> None:
        """Select a voice such as ``en-us+m3`` or ``cmn+f2`` (language identifier + variant)."""
        if voice == self._voice:
            return
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice named {voice!r}")
        self._voice = voice

    def synth(self, text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50,
              seed: int = 0) -> np.ndarray:
        """Synthesize ``text``; returns int16 samples (N,) at 22,050 Hz.

        ``rate`` is in words per minute (80–450), ``pitch`` and ``pitch_range`` in 0–100; ``seed`` seeds
        espeak's own random generator (breathiness and noise of some voice variants).
        """
        self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self.set_voice(voice)
        self._lib.espeak_SetParameter(PARAM_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(PARAM_RANGE, int(pitch_range), 0)
        self._chunks = []
        data = text.encode("utf-8")
        err = self._lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
        self._lib.espeak_Synchronize()
        if err != 0:
            raise EspeakError(f"espeak_Synth failed (code {err}) for voice {voice!r} and text {text!r}")
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks).astype(np.int16)

    def synth_isolated(self, text: str, voice: str, rate: int = 175, pitch: int = 50,
                       pitch_range: int = 50, seed: int = 0) -> np.ndarray:
        """Like :meth:`synth`, but in a forked child so that the output never depends on history.

        libespeak-ng carries waveform state (glottal phase, flutter, echo) from one call to the next, so
        the same text can differ by a few samples after a different previous utterance. A child forked
        from a process that never synthesizes always starts from the same state. Falls back to
        :meth:`synth` where ``os.fork`` does not exist.
        """
        if not hasattr(os, "fork"):  # pragma: no cover - non-POSIX
            return self.synth(text, voice, rate, pitch, pitch_range, seed)
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesize, send, exit without running any cleanup
            os.close(read_fd)
            try:
                payload = b"OK" + self.synth(text, voice, rate, pitch, pitch_range, seed).tobytes()
            except BaseException as err:  # noqa: BLE001 - reported to the parent
                payload = b"ER" + str(err).encode("utf-8", "replace")
            with os.fdopen(write_fd, "wb") as f:
                f.write(payload)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as f:
            payload = f.read()
        os.waitpid(pid, 0)
        if payload[:2] != b"OK":
            raise EspeakError(payload[2:].decode("utf-8", "replace") or f"espeak child died on {text!r}")
        return np.frombuffer(payload[2:], dtype=np.int16).copy()

    def version(self) -> str:
        """libespeak-ng's version string, e.g. ``1.52.0``."""
        self._lib.espeak_Info.restype = ctypes.c_char_p
        self._lib.espeak_Info.argtypes = [ctypes.c_void_p]
        return (self._lib.espeak_Info(None) or b"").decode("utf-8", "replace")

    def phonemes(self, text: str, voice: str) -> str:
        """espeak's phoneme string for ``text`` (clauses joined by spaces)."""
        self.set_voice(voice)
        buf = ctypes.c_char_p(text.encode("utf-8"))
        out: list[str] = []
        while buf.value:
            res = self._lib.espeak_TextToPhonemes(ctypes.byref(buf), CHARS_UTF8, 0)
            out.append(res.decode("utf-8") if res else "")
        return " ".join(out)
