"""Voices per language and voice group, and the ranges of the per-utterance prosody.

An espeak-ng voice is a language (accent) plus a variant (``+m3``, ``+f2``, ``+klatt4``…); a flite or
festival voice carries its engine's prefix (``flite:awb``, ``festival:kal_diphone``, see ``engines.py``).
Dev and test voices are both held out from training and disjoint from each other (as AISHELL-1 and
LibriSpeech keep their dev/test speakers apart from training): every dev/test voice uses a variant never
heard in training. The "unseen" groups hold out whole speakers of the other engines as well: the speaker
SLT (flite ``slt``, festival's HTS ``cmu_us_slt_arctic_hts``) reads only test-unseen, flite ``rms`` and
festival ``ked_diphone`` only dev-unseen.
"""

from __future__ import annotations

from kdlab.data.synth.engines import ENGINES, engine_of

# espeak-ng voice variants (``espeak-ng-data/voices/!v``) that read training speech: formant and pitch
# variations of male, female and Klatt voices. Held out: every dev/test variant below and its relatives
# (steph2/3, edward2); left out: whispers, robots and effect voices (croak, Demonic, UniRobot, robosoft…).
TRAIN_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4", "klatt", "klatt2", "klatt3", "klatt6", "david",
    "linda", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Henrique", "Hugo",
    "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "Reed", "anika", "announcer", "antonio",
    "aunty", "benjamin", "boris", "caleb", "ed", "gustave", "ian", "iven", "iven2", "john", "max", "michel",
    "miguel", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "travis",
    "victor", "zac",
)
EN_ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-029", "en-gb-scotland", "en-us-nyc", "en-gb-x-gbclan")
ZH_HELD_OUT = ("m6", "f4", "klatt4", "m7", "f5", "klatt5", "belinda")  # the Mandarin dev/test variants

EN_DEV = ("en-us+m7", "en+steph", "en-029+klatt4")
EN_TEST = ("en-gb-x-gbcwmd+m8", "en-us+belinda", "en-gb-scotland+klatt5", "en-us-nyc+edward")
VOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        # every training variant, each with one of the accents in turn: 63 voices; then the other engines'
        # training voices (flite's kal is its 8 kHz diphone voice: band-limited speech)
        "train": tuple(f"{EN_ACCENTS[i % len(EN_ACCENTS)]}+{v}" for i, v in enumerate(TRAIN_VARIANTS))
        + ("flite:kal", "flite:kal16", "flite:awb", "festival:kal_diphone"),
        "dev": EN_DEV,
        "test": EN_TEST,
        "dev-unseen": EN_DEV + ("flite:rms", "festival:ked_diphone"),
        "test-unseen": EN_TEST + ("flite:slt", "festival:cmu_us_slt_arctic_hts"),
    },
    "zh": {
        "train": tuple(f"cmn+{v}" for v in TRAIN_VARIANTS if v not in ZH_HELD_OUT),
        "dev": ("cmn+m6", "cmn+f4", "cmn+klatt4"),
        "test": ("cmn+m7", "cmn+f5", "cmn+klatt5", "cmn+belinda"),
    },
}

RATE_WPM = (135, 205)  # espeak default 175 (flite and festival: duration stretch 175 / rate)
PITCH = (25, 75)  # espeak default 50
PITCH_RANGE = (20, 80)  # intonation range, default 50
# Vocal-tract warp of the other engines' training voices: every frequency scaled by this factor (the audio
# is read at a rate α times its own and resampled to 16 kHz, the tempo kept by a slower synthesis), which
# turns their few speakers into many (espeak's 63 variants already differ in formants).
WARP = (0.88, 1.18)


def voices_for(lang: str, split: str, engines: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The voices of a group, kept to ``engines`` (all engines when None)."""
    try:
        found = VOICES[lang][split]
    except KeyError:
        raise ValueError(f"no voices for language {lang!r} and split {split!r}") from None
    return found if engines is None else tuple(v for v in found if engine_of(v) in engines)


def by_engine(voices: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Voices grouped by engine, engines in their canonical order."""
    return {e: vs for e in ENGINES if (vs := tuple(v for v in voices if engine_of(v) == e))}
