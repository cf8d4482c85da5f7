"""Render one planned utterance: synthesizer (espeak-ng, flite or festival) → 16 kHz → reverberation →
noise → level → PCM16 FLAC.

Runs inside worker processes; each keeps its own espeak engine and babble bank, built identically in
every process from a fixed seed, and synthesizes in forked children, so the audio does not depend on
which worker renders an utterance or what it rendered before.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdlab.data.synth import augment, engines
from kdlab.data.synth.espeak import Espeak

SAMPLE_RATE = 16000
BABBLE_SENTENCES = 10
WARMUP = {"en": "Hello.", "zh": "你好。"}


@dataclass(frozen=True)
class Plan:
    """Everything needed to render one utterance; drawn in the parent process from the utterance seed."""

    uid: str
    path: str  # absolute output path
    spoken: str
    voice: str
    rate: int
    pitch: int
    pitch_range: int
    lead_s: float
    trail_s: float
    rt60: float  # 0: no reverberation
    drr_db: float
    noise: str  # "" | white | pink | babble
    snr_db: float
    level_dbfs: float
    floor_dbfs: float  # white microphone noise floor (absolute level): no recording is digitally silent
    noise_seed: int
    lang: str
    warp: float = 1.0  # vocal-tract warp (voices.WARP): every frequency × warp, tempo kept

    def condition(self) -> str:
        """Short description of the acoustic condition, e.g. 'pink@12dB+rev0.40s'."""
        parts = [f"{self.noise}@{self.snr_db:.0f}dB" if self.noise else "clean"]
        if self.rt60 > 0:
            parts.append(f"rev{self.rt60:.2f}s")
        return "+".join(parts)


_BABBLE: dict[str, list[np.ndarray]] = {}


def speak(text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50,
          seed: int = 0, warp: float = 1.0) -> np.ndarray:
    """The voice's engine's output resampled to 16 kHz, float32 in [-1, 1]. (N,)

    ``warp`` ≠ 1 (flite and festival voices only; espeak's 63 variants need none) scales every frequency by
    ``warp``: the samples are read as if taken at ``warp`` × the engine's rate, which raises formants, pitch
    and tempo by ``warp``, and the engine speaks ``warp`` times slower, so the tempo stays as planned.
    """
    if engines.engine_of(voice) == "espeak":
        engine = Espeak.get()
        raw = engine.synth_isolated(text, voice, rate=rate, pitch=pitch, pitch_range=pitch_range, seed=seed)
        sr = engine.sample_rate
    else:
        raw, sr = engines.synth_external(text, voice, round(rate / warp), pitch, pitch_range)
    read_sr = sr if warp == 1.0 else int(round(sr * warp / 100)) * 100
    return augment.resample(raw.astype(np.float32) / 32768.0, read_sr, SAMPLE_RATE)


def babble_bank(lang: str) -> list[np.ndarray]:
    """Speech of several training voices, the raw material of babble noise (same in every process)."""
    if lang not in _BABBLE:
        from kdlab.data.synth.corpus import grammar_for
        from kdlab.data.synth.voices import voices_for

        rng = random.Random(f"babble-{lang}")
        generate = grammar_for(lang)
        voices = voices_for(lang, "train", ("espeak",))
        texts = [generate(rng).spoken for _ in range(BABBLE_SENTENCES)]
        _BABBLE[lang] = [speak(text, voices[i % len(voices)]) for i, text in enumerate(texts)]
    return _BABBLE[lang]


def render(plan: Plan) -> tuple[str, int]:
    """Synthesize, degrade and write ``plan``; returns (uid, number of 16 kHz samples)."""
    import soundfile as sf

    rng = np.random.default_rng(plan.noise_seed)
    speech = speak(plan.spoken, plan.voice, plan.rate, plan.pitch, plan.pitch_range, plan.noise_seed % 2**31,
                   plan.warp)
    if len(speech) == 0:
        raise RuntimeError(f"{plan.uid}: {engines.engine_of(plan.voice)} produced no audio for "
                           f"{plan.spoken!r} ({plan.voice})")
    lead, trail = int(plan.lead_s * SAMPLE_RATE), int(plan.trail_s * SAMPLE_RATE)
    wave = np.concatenate([np.zeros(lead, np.float32), speech, np.zeros(trail, np.float32)])  # (N,)
    if plan.rt60 > 0:
        wave = augment.reverberate(wave, augment.synthetic_rir(SAMPLE_RATE, plan.rt60, plan.drr_db, rng))
    if plan.noise:
        n = len(wave)
        noise = {
            "white": lambda: augment.white_noise(n, rng),
            "pink": lambda: augment.pink_noise(n, rng),
            "babble": lambda: augment.babble_noise(n, babble_bank(plan.lang), rng),
        }[plan.noise]()
        # SNR against the speech part only, so leading/trailing silence does not lower it
        whole_vs_speech = augment.rms(wave) / augment.rms(speech)
        wave = augment.add_noise(wave, noise, plan.snr_db + 20 * np.log10(whole_vs_speech))
    wave = augment.normalize_level(wave, plan.level_dbfs)
    wave = wave + augment.white_noise(len(wave), rng) * 10 ** (plan.floor_dbfs / 20)  # microphone noise floor
    pcm = np.clip(np.round(wave * 32767.0), -32768, 32767).astype(np.int16)
    Path(plan.path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(plan.path, pcm, SAMPLE_RATE, subtype="PCM_16", format="FLAC", compression_level=0.0)
    return plan.uid, len(pcm)


def init_worker(lang: str) -> None:
    """Pool initializer: the same start-up sequence in every worker, so that every forked synthesis
    (see :meth:`Espeak.synth_isolated`) starts from the same espeak state."""
    from kdlab.data.synth.voices import voices_for

    engine = Espeak.get()
    engine.synth(WARMUP[lang], voices_for(lang, "train", ("espeak",))[0])  # loads voice data once, before any fork
    babble_bank(lang)
