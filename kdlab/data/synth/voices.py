"""espeak-ng voices per language and split, and the ranges of the per-utterance prosody.

A voice is an espeak language (accent) plus a variant (``+m3``, ``+f2``, ``+klatt4``…). Dev and test
voices are both held out from training and disjoint from each other (as AISHELL-1 and LibriSpeech keep
their dev/test speakers apart from training): every dev/test voice uses a variant never heard in training.
"""

from __future__ import annotations

VOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "train": (
            "en-us+m1", "en-us+f1", "en-us+m3", "en-us+f3", "en+m2", "en+f2", "en-gb-x-rp+m4",
            "en-gb-x-rp+f4", "en-029+m5", "en-gb-scotland+m6", "en-us-nyc+f5", "en-gb-x-gbclan+klatt",
            "en-us+klatt2", "en+klatt3", "en-us+david", "en-gb-x-rp+linda",
        ),
        "dev": ("en-us+m7", "en+steph", "en-029+klatt4"),
        "test": ("en-gb-x-gbcwmd+m8", "en-us+belinda", "en-gb-scotland+klatt5", "en-us-nyc+edward"),
    },
    "zh": {
        "train": (
            "cmn+m1", "cmn+m2", "cmn+m3", "cmn+m4", "cmn+m5", "cmn+f1", "cmn+f2", "cmn+f3",
            "cmn+klatt", "cmn+klatt2", "cmn+klatt3", "cmn+david", "cmn+linda", "cmn+adam",
        ),
        "dev": ("cmn+m6", "cmn+f4", "cmn+klatt4"),
        "test": ("cmn+m7", "cmn+f5", "cmn+klatt5", "cmn+belinda"),
    },
}

RATE_WPM = (135, 205)  # espeak default 175
PITCH = (25, 75)  # espeak default 50
PITCH_RANGE = (20, 80)  # intonation range, default 50


def voices_for(lang: str, split: str) -> tuple[str, ...]:
    try:
        return VOICES[lang][split]
    except KeyError:
        raise ValueError(f"no voices for language {lang!r} and split {split!r}") from None
