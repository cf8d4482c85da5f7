"""The speech synthesizers behind mini-en: espeak-ng (library), flite and festival (Debian programs).

A voice names its engine: ``flite:awb``, ``festival:kal_diphone``; a voice without a prefix is an espeak-ng
voice (``en-us+m3``), as in every corpus built before the other engines joined. Every engine reads the
same prosody controls (``rate`` in words per minute around 175, ``pitch`` and ``pitch_range`` in 0–100
around 50) and returns int16 samples at its own rate. flite and festival are deterministic: the same text,
voice and controls give the same bytes.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np

from kdlab.errors import UserError

ENGINES = ("espeak", "flite", "festival")
DEFAULT_RATE = 175
PITCH_OCTAVES = 1 / 3  # pitch 0…100 moves the mean f0 by ±1/3 octave (±4 semitones), as espeak's does


@dataclass(frozen=True)
class External:
    """An engine installed from Debian packages: its program and the packages that provide its voices."""

    program: str
    packages: tuple[str, ...]
    voice_files: dict[str, str]  # voice → a file that exists when the voice is installed ("" = built in)


EXTERNAL = {
    "flite": External("flite", ("flite",), {v: "" for v in ("kal", "kal16", "awb", "rms", "slt")}),
    "festival": External("text2wave", ("festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts"), {
        "kal_diphone": "/usr/share/festival/voices/english/kal_diphone",
        "ked_diphone": "/usr/share/festival/voices/english/ked_diphone",
        "cmu_us_slt_arctic_hts": "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts",
    }),
}
# Mean f0 (Hz) of each voice at its defaults, measured on a test sentence; pitch control scales it.
# None: the voice ignores the f0 target (flite rms, festival's HTS voice), so only the rate varies.
BASE_F0 = {"flite:kal": 91.0, "flite:kal16": 91.0, "flite:awb": 132.0, "flite:rms": None, "flite:slt": 174.0,
           "festival:kal_diphone": 105.0, "festival:ked_diphone": 105.0, "festival:cmu_us_slt_arctic_hts": None}
INSTALL_ALL = "apt-get install -y " + " ".join(p for e in EXTERNAL.values() for p in e.packages)


def engine_of(voice: str) -> str:
    """The engine of a voice name (``flite:awb`` → flite; no prefix → espeak)."""
    engine, sep, _ = voice.partition(":")
    if not sep:
        return "espeak"
    if engine not in EXTERNAL:
        raise ValueError(f"unknown synthesizer {engine!r} in voice {voice!r} (known: {', '.join(ENGINES)})")
    return engine


def parse_engines(text: str) -> tuple[str, ...]:
    """``"espeak,flite"`` → ("espeak", "flite") in the canonical order; an unknown name is a UserError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ENGINES))
    if unknown or not names:
        raise UserError(f"--engines {text!r}: unknown engine {', '.join(unknown) or '(none given)'} "
                        f"(choose from {', '.join(ENGINES)})")
    return tuple(e for e in ENGINES if e in names)


def missing(engines: tuple[str, ...], voices: tuple[str, ...] = ()) -> list[str]:
    """The packages to install before ``engines`` (and these ``voices``) can speak; [] when all are here."""
    need: list[str] = []
    for name in engines:
        ext = EXTERNAL.get(name)
        if ext is None:
            continue
        wanted = [v.partition(":")[2] for v in voices if engine_of(v) == name] or list(ext.voice_files)
        absent = shutil.which(ext.program) is None or any(
            ext.voice_files[v] and not os.path.isdir(ext.voice_files[v]) for v in wanted)
        if absent:
            need += [p for p in ext.packages if p not in need]
    return need


def require(engines: tuple[str, ...]) -> None:
    """Raise a one-line UserError naming the Debian packages to install when an engine is absent."""
    need = missing(engines)
    if need:
        raise UserError(f"the synthesizers {', '.join(e for e in engines if e in EXTERNAL)} need the Debian "
                        f"packages {' '.join(need)}, which are not installed; install them with: "
                        f"sudo apt-get install -y {' '.join(need)} (or choose --engines espeak)")


@functools.cache
def version(engine: str) -> str:
    """The engine's version string, recorded in the corpus card."""
    if engine == "espeak":
        from kdlab.data.synth.espeak import Espeak

        return Espeak.get().version()
    program = {"flite": ["flite", "--version"], "festival": ["festival", "--version"]}[engine]
    out = subprocess.run(program, capture_output=True, text=True, timeout=30).stdout
    found = re.search(r"(flite-[\w.\-]+|\d+\.\d+\.\d+)", out)
    packages = ", ".join(f"{p} {_package_version(p)}" for p in EXTERNAL[engine].packages)
    return f"{found.group(1) if found else out.strip()} (Debian: {packages})"


def _package_version(package: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "?"


def _stretch(rate: int) -> float:
    return round(DEFAULT_RATE / rate, 4)


def _f0(voice: str, pitch: int, pitch_range: int) -> tuple[float, float] | None:
    """(mean, standard deviation) of f0 in Hz for the pitch controls, or None where the voice ignores them."""
    base = BASE_F0.get(voice)
    if base is None:
        return None
    mean = base * 2 ** (PITCH_OCTAVES * (pitch - 50) / 50)
    return round(mean, 2), round(0.2 * mean * pitch_range / 50, 2)


def flite_command(voice: str, text: str, out: str, rate: int, pitch: int, pitch_range: int) -> list[str]:
    """The flite command line that renders ``text`` with ``voice`` into the file ``out``."""
    cmd = ["flite", "-voice", voice.partition(":")[2], "-t", text, "-o", out,
           "--setf", f"duration_stretch={_stretch(rate)}"]
    f0 = _f0(voice, pitch, pitch_range)
    if f0 is not None:
        cmd += ["--setf", f"int_f0_target_mean={f0[0]}", "--setf", f"int_f0_target_stddev={f0[1]}"]
    return cmd


def festival_command(voice: str, out: str, rate: int, pitch: int, pitch_range: int) -> list[str]:
    """The text2wave command line (text on stdin) for ``voice``; diphone voices take an f0 target."""
    name = voice.partition(":")[2]
    cmd = ["text2wave", "-eval", f"(voice_{name})", "-eval", f"(Parameter.set 'Duration_Stretch {_stretch(rate)})"]
    f0 = _f0(voice, pitch, pitch_range)
    if f0 is not None:
        cmd += ["-eval", f"(set! int_lr_params '((target_f0_mean {f0[0]}) (target_f0_std {f0[1]}) "
                         "(model_f0_mean 170) (model_f0_std 34)))"]
    return cmd + ["-o", out]


def synth_external(text: str, voice: str, rate: int = DEFAULT_RATE, pitch: int = 50,
                   pitch_range: int = 50) -> tuple[np.ndarray, int]:
    """Render ``text`` with a flite or festival voice: (int16 samples (N,), sample rate)."""
    import soundfile as sf

    engine = engine_of(voice)
    with tempfile.TemporaryDirectory(prefix="kdlab-tts-") as tmp:
        out = os.path.join(tmp, "out.wav")
        if engine == "flite":
            cmd, stdin = flite_command(voice, text, out, rate, pitch, pitch_range), None
        else:
            cmd, stdin = festival_command(voice, out, rate, pitch, pitch_range), text
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError(f"{engine} failed for voice {voice!r} and text {text!r}: "
                               f"{(done.stderr or done.stdout).strip()[-300:]}")
        wave, sr = sf.read(out, dtype="int16", always_2d=True)
    return wave[:, 0].copy(), int(sr)
