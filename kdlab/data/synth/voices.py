"""espeak-ng voices per language and split, and the ranges of the per-utterance prosody.

A voice is an espeak language (accent) plus a variant (``+m3``, ``+f2``, ``+klatt4``…). Dev and test
voices are both held out from training and disjoint from each other (as AISHELL-1 and LibriSpeech keep
their dev/test speakers apart from training): every dev/test voice uses a variant never heard in training.
"""

from __future__ import annotations

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

VOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        # every training variant, each with one of the accents in turn: 63 voices
        "train": tuple(f"{EN_ACCENTS[i % len(EN_ACCENTS)]}+{v}" for i, v in enumerate(TRAIN_VARIANTS)),
        "dev": ("en-us+m7", "en+steph", "en-029+klatt4"),
        "test": ("en-gb-x-gbcwmd+m8", "en-us+belinda", "en-gb-scotland+klatt5", "en-us-nyc+edward"),
    },
    "zh": {
        "train": tuple(f"cmn+{v}" for v in TRAIN_VARIANTS if v not in ZH_HELD_OUT),
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
