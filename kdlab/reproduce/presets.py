"""Presets of ``kdlab reproduce``: corpus, model sizes, epochs and decoding of the paper's experiment.

Paper (Section 4.2): AR teacher M (AISHELL-1) / L (LibriSpeech); NAR students at the teacher's size and
~9× smaller (XS / S); stage 1 (F-KD) 80 epochs from scratch, stage 2 (+S-KD) 20 epochs of fine-tuning;
the last 5 checkpoints averaged (L_jca baseline: 80 + 20 epochs, also averaged at 80 for a comparison
with +F-KD at the same length); AR joint CTC/attention beam 10 (CTC weight 0.3); Mask-CTC beam B = 10,
p_thr = 0.99, K = 2. The mini presets shrink all of it so that the whole run fits a 2-core CPU.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from kdlab.errors import UserError


@dataclass(frozen=True)
class CorpusSpec:
    kind: str  # synth | librispeech | aishell
    lang: str  # en | zh
    hours: float = 3.0  # synth: training hours
    n_dev: int = 150  # synth: dev utterances
    n_test: int = 150  # synth: test utterances
    seed: int = 0
    engines: tuple[str, ...] = ()  # synth: the synthesizers (data.synth.engines); () = every one that speaks lang


@dataclass(frozen=True)
class ReproducePreset:
    name: str
    corpus: CorpusSpec
    tokenizer: str  # char | bpe
    vocab_size: int  # BPE size incl. specials (ignored for char)
    teacher: str  # model preset of the AR teacher
    students: dict[str, str]  # {"same": preset, "smaller": preset}
    teacher_epochs: int
    student_epochs: int  # stage-1 F-KD epochs (paper: 80); the baseline keeps its checkpoint at this length
    finetune_epochs: int  # stage-2 ++S-KD epochs (paper: 20); the baseline continues for as many
    lr: float = 3e-3
    warmup_steps: int = 150
    # Stage 2 (++S-KD): "continue" resumes stage 1's run (model, optimiser, schedule, RNG; epochs numbered on,
    # the last average_last epochs of both stages averaged), as the L_jca baseline trains its student_epochs +
    # finetune_epochs in one run: Table 1's ++S-KD row then differs from the baseline by the loss alone.
    # "finetune": a fresh optimiser from stage 1's averaged model at a constant finetune_lr.
    stage2: str = "continue"
    finetune_lr: float = 5e-4
    max_frames: int = 4000  # feature frames per update (10 ms each)
    student_max_frames: int = 0  # the students' batches; 0: max_frames
    speed_perturb: bool = False  # paper: AISHELL-1 only
    specaug: bool = True  # paper: both corpora
    average_last: int = 5
    nbest: int = 10  # |Ω| of eq 8-9
    nbest_max_frames: int = 8000  # padded frames per batch of the teacher's N-best search (larger on a GPU)
    beams: tuple[int, ...] = (1, 5, 10)  # Table 3
    rtf_utts: int = 0  # 0: every test utterance in the one-thread RTF measurement
    train: dict = field(default_factory=dict)  # extra TrainConfig fields
    data: dict = field(default_factory=dict)  # extra DataConfig fields (e.g. num_workers on a GPU machine)
    # ModelConfig fields over the students' model presets (written into their configs and checkpoints)
    student_model: dict = field(default_factory=dict)
    # KDConfig fields that differ from the paper's weights (KDConfig.stage1 / stage2), e.g. {"gamma_dec": 0.1}
    fkd: dict = field(default_factory=dict)  # stage 1, +F-KD (eq 13 with β_S = 0)
    skd: dict = field(default_factory=dict)  # stage 2, ++S-KD
    # "pretrained:<corpus>/<name>": distil from that shipped teacher instead of training one (reproduce/adopt.py)
    teacher_from: str = ""


MINI_EN = ReproducePreset(
    name="mini-en",
    # 6 h, 63 training voices; clean and "other" dev/test sets. The teacher's test-clean WER after 8 epochs
    # (average of 7-8): 21.9 % on 3 h, 13.6 % on 6 h (same recipe; 3 h overfits, 6 h does not).
    corpus=CorpusSpec(kind="synth", lang="en", hours=6.0),
    tokenizer="bpe",
    # BPE 64 leaves CTC's blank plateau in one epoch of 3 h (dev CTC loss 65 after epoch 1, 48 after 2);
    # BPE 256 was still on it after two (102, 99). See docs/RESULTS.md, calibration.
    vocab_size=64,
    teacher="mini-teacher",
    students={"same": "mini-teacher", "smaller": "mini-student"},
    teacher_epochs=8,  # test-clean WER of one run at epoch 4 / 6 / 8: 40.5 / 27.8 / 22.4 % (still falling)
    student_epochs=4,  # ~1,660 updates of 15 s per epoch of 6 h: as many updates as 8 epochs of 3 h
    # --set finetune_epochs=3 (the students shipped before): every NAR model 8-11 points of WER better,
    # CMLM at 70 %, ~27 min more; the ++S-KD margin over L_jca halves (RESULTS.md, "Stage 2 for three epochs")
    finetune_epochs=1,
    warmup_steps=400,
    max_frames=3000,  # 30 s of audio per update: ~760 updates per epoch of 6 h (updates bound the budget)
    # 15 s per update for the students: twice the updates per epoch at about the same cost per audio
    # second; after 2 epochs dev CMLM accuracy 0.219 vs 0.206 and dev CTC loss 37.2 vs 38.6 with 30 s.
    student_max_frames=1500,
    average_last=2,  # the curves are still steep at the end: averaging 5 would reach back to weaker epochs
    rtf_utts=60,  # one-thread batch-1 RTF measured on the first 60 test utterances
    # SpecAugment delays CTC's escape from the blank plateau past this budget (0.6 h, 4 teacher epochs: dev
    # CTC loss 127 with it, 114 without); the 63 training voices carry the variety instead.
    specaug=False,
    # The CMLM tells its masked slots apart by absolute positions too (on top of its relative ones): dev
    # masked-token accuracy of the same-size L_jca student after 2 epochs .49 instead of .31 (RESULTS.md).
    student_model={"cmlm_abs_pos": True},
)

MINI_EN_LARGE = replace(
    MINI_EN, name="mini-en-large", corpus=CorpusSpec(kind="synth", lang="en", hours=12.0),
    teacher_epochs=8, student_epochs=10, finetune_epochs=4, max_frames=6000, student_max_frames=3000,
    warmup_steps=600, average_last=3, nbest_max_frames=40000, data={"num_workers": 2},
)

PRESETS: dict[str, ReproducePreset] = {
    "mini-en": MINI_EN,
    # 6 h (5,619 sentences, 794 characters) and 24 teacher epochs: test CER 94.8 % with 3 h / 8 epochs,
    # 73.3 % with 6 h / 8, 30.4 % with 6 h / 16, 8.3 % with 6 h / 24 (the CTC branch leaves its blank
    # plateau only after ~10 epochs; docs/RESULTS.md). A long CPU preset: the teacher alone takes ~2 h on
    # one thread, the students ~2 h more on two. Stage 2 of six epochs (the shipped students): same-size
    # ++S-KD test CER 45.95 % after 3 S-KD epochs, 27.05 % after 6 (its CMLM .43 → .59 on dev).
    "mini-zh": replace(MINI_EN, name="mini-zh", corpus=CorpusSpec(kind="synth", lang="zh", hours=6.0),
                       tokenizer="char", teacher_epochs=24, finetune_epochs=6, speed_perturb=True),
    # A larger recipe for a GPU machine: 12 h, the same model sizes, batches of 60 s (teacher) and 30 s
    # (students), a longer stage 2. Its teacher (8 epochs, ~8 min on one H100): 9.13 % test-clean WER
    # (docs/RESULTS.md, "A teacher trained on one GPU"); the student epochs are not calibrated yet.
    "mini-en-large": MINI_EN_LARGE,
    # 24 teacher epochs as in mini-zh (the same ~740 updates per epoch): mini-zh's CTC needs ~10 epochs to
    # leave its blank plateau (docs/RESULTS.md); not run at this size yet.
    "mini-zh-large": replace(MINI_EN_LARGE, name="mini-zh-large", corpus=replace(MINI_EN_LARGE.corpus, lang="zh"),
                             tokenizer="char", speed_perturb=True, teacher_epochs=24),
    # The paper's LibriSpeech set-up: teacher L, students L and S, BPE 5000 (GPU; torchrun for multi-GPU).
    "librispeech": ReproducePreset(
        name="librispeech", corpus=CorpusSpec(kind="librispeech", lang="en"), tokenizer="bpe",
        vocab_size=5000, teacher="L", students={"same": "L", "smaller": "S"}, teacher_epochs=80,
        student_epochs=80, finetune_epochs=20, lr=2e-3, warmup_steps=25000, finetune_lr=5e-4,
        max_frames=200000, rtf_utts=200, train={"precision": "bf16", "accum_grad": 4},
    ),
    # The paper's AISHELL-1 set-up: teacher M, students M and XS, 4,233 characters, speed perturbation.
    "aishell": ReproducePreset(
        name="aishell", corpus=CorpusSpec(kind="aishell", lang="zh"), tokenizer="char", vocab_size=0,
        teacher="M", students={"same": "M", "smaller": "XS"}, teacher_epochs=80, student_epochs=80,
        finetune_epochs=20, lr=1e-3, warmup_steps=25000, finetune_lr=5e-4, max_frames=120000,
        speed_perturb=True, rtf_utts=200, train={"precision": "bf16"},
    ),
}


def get_preset(name: str) -> ReproducePreset:
    if name not in PRESETS:
        raise ValueError(f"unknown reproduce preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


# ----------------------------------------------------------------------------- typed --set overrides

AT_LEAST_ONE = ("teacher_epochs", "student_epochs", "max_frames", "nbest", "nbest_max_frames", "average_last")
POSITIVE_FLOATS = ("lr", "finetune_lr")


class PresetError(UserError):
    """A ``kdlab reproduce --set`` item names no preset field or gives it a value of the wrong type or range."""


def _section_classes() -> dict[str, type]:
    """The dataclass whose fields each dict-valued preset field changes."""
    from kdlab.config import DataConfig, TrainConfig
    from kdlab.kd.config import KDConfig
    from kdlab.models.config import ModelConfig

    return {"train": TrainConfig, "data": DataConfig, "student_model": ModelConfig, "fkd": KDConfig,
            "skd": KDConfig}


def _typed(hint: Any, value: Any, key: str) -> Any:
    """``value`` checked against the field's type hint (tuples of ints given as YAML lists); ConfigError."""
    from kdlab.config import ConfigError, check_fields, check_value

    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)) or not value or \
                any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
            raise ConfigError(f"{key}: expected a list of positive integers, got {value!r}")
        return tuple(value)
    if key in _section_classes():
        return check_fields(_section_classes()[key], value, key)
    return check_value(value, hint, key)


def _in_range(key: str, value: Any) -> None:
    """Counts >= 0 (epochs, frames, … >= 1), learning rates and corpus hours > 0; ConfigError otherwise."""
    from kdlab.config import ConfigError

    if key in POSITIVE_FLOATS and value <= 0:
        raise ConfigError(f"{key}: must be > 0, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and value < (1 if key in AT_LEAST_ONE else 0):
        raise ConfigError(f"{key}: must be >= {1 if key in AT_LEAST_ONE else 0}, got {value!r}")


def _corpus(base: CorpusSpec, value: Any) -> CorpusSpec:
    """The preset's corpus with the fields of ``value`` (a mapping) changed, each type-checked."""
    from kdlab.config import check_fields

    changes = check_fields(CorpusSpec, value, "corpus")
    if changes.get("hours", 1.0) <= 0:
        raise PresetError(f"corpus.hours: must be > 0, got {changes['hours']!r}")
    return replace(base, **changes)


def parse_override(item: str) -> tuple[str, str]:
    """``FIELD=VALUE`` → (field, raw value); :class:`PresetError` naming the known fields otherwise."""
    names = sorted(f.name for f in fields(ReproducePreset))
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or key not in names:
        raise PresetError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {names}")
    return key, raw


def with_overrides(preset: ReproducePreset, overrides: list[str]) -> ReproducePreset:
    """``preset`` with the ``--set FIELD=VALUE`` items applied (values parsed as YAML), every value checked
    against its field's type and range before anything runs; :class:`PresetError` (one line) otherwise."""
    import yaml

    from kdlab.config import ConfigError

    hints = typing.get_type_hints(ReproducePreset)
    changes: dict[str, Any] = {}
    for item in overrides:
        key, raw = parse_override(item)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise PresetError(f"--set {item!r}: cannot parse the value ({err})") from None
        try:
            if key == "corpus":
                changes[key] = _corpus(changes.get("corpus", preset.corpus), value)
                continue
            value = _typed(hints[key], value, key)
            _in_range(key, value)
        except ConfigError as err:
            raise PresetError(f"--set {item!r}: {err}") from None
        changes[key] = value
    return replace(preset, **changes)
