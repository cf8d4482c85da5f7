"""Experiment configuration: one YAML file → :class:`ExperimentConfig` dataclasses.

A config has four sections::

    data:   corpus / manifests, tokenizer (kind + size, or reuse another run's), CMVN, augmentation
    model:  kind (ar | maskctc) + preset name and/or explicit ModelConfig fields
    train:  optimiser, Noam schedule, batching, precision, checkpoint averaging, ...
    kd:     optional knowledge-distillation section (kdlab.kd.config.KDConfig; eq 7–13)

Unknown keys raise :class:`ConfigError` naming the dotted key. Command-line overrides use dotted keys
(``train.epochs=3``); values are parsed with ``yaml.safe_load`` (no exec/eval).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdlab.errors import UserError

MODEL_KINDS = ("ar", "maskctc", "ctc", "transducer")
OPTIMIZERS = ("adam", "adamw")
PRECISIONS = ("fp32", "bf16", "fp16")
TOKENIZER_KINDS = ("char", "bpe")


class ConfigError(UserError, ValueError):
    """A config value or key is wrong; the message names the dotted key."""


@dataclass
class DataConfig:
    corpus: str | None = None  # folder with train/dev/test.jsonl (output of `kdlab data synth|prepare`)
    train: str | None = None  # training manifest; default <corpus>/train.jsonl
    dev: str | None = None  # validation manifest; default <corpus>/dev.jsonl
    lang: str | None = None  # en | zh; default: the corpus's info.json
    tokenizer: str = "char"  # char (Mandarin, CER) | bpe (English sentencepiece, WER)
    vocab_size: int = 500  # BPE pieces incl. specials (paper: 5000 on LibriSpeech); ignored for char
    tokenizer_from: str | None = None  # reuse a run folder's tokenizer/ (or a tokenizer folder)
    cmvn_from: str | None = None  # reuse a run folder's cmvn.json (or a cmvn.json file)
    specaug: bool = True  # SpecAugment on training batches (paper: both corpora)
    specaug_conf: dict = field(default_factory=dict)  # fields of kdlab.data.dataset.SpecAugConfig
    speed_perturb: bool = False  # 0.9/1.0/1.1 speed perturbation (paper: AISHELL-1 only)
    # voice and channel augmentation of the training features (VTLP, band limit, noise, reverberation):
    # fields of kdlab.data.voice_aug.VoiceAugConfig, e.g. {vtlp: [0.9, 1.1], p_band_limit: 0.2}; {}: off
    voice_aug: dict = field(default_factory=dict)
    num_workers: int = 0  # DataLoader worker processes
    feature_cache: str | None = None  # folder caching raw fbank per utterance (and speed); null: no cache
    strict: bool = False  # an unusable utterance (bad audio, empty/OOV transcript, too short) is an error,
    # not a counted skip (kdlab/training/datacheck.py; counts in <run>/data_report.json)

    def manifest(self, split: str) -> str:
        """Path of the ``train`` or ``dev`` manifest (explicit, or inside ``corpus``)."""
        explicit = getattr(self, split)
        if explicit:
            return explicit
        if not self.corpus:
            raise ConfigError(f"data.{split}: no manifest given and data.corpus is not set")
        return str(Path(self.corpus) / f"{split}.jsonl")


@dataclass
class ModelSection:
    kind: str = "maskctc"  # ar (joint CTC/attention teacher) | maskctc (NAR student) | ctc | transducer
    preset: str | None = "mini-student"  # a name in kdlab.models.config.PRESETS (L, M, S, XS, mini-*) or null
    config: dict = field(default_factory=dict)  # ModelConfig fields; override the preset (all if no preset)


@dataclass
class TrainConfig:
    epochs: int = 10
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3  # peak learning rate, reached at the end of warm-up (Noam schedule)
    warmup_steps: int = 1000  # optimiser steps of linear warm-up; then lr ∝ step^-0.5
    betas: list = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 1e-6
    grad_clip: float = 5.0  # max global gradient L2 norm; <= 0 disables clipping
    accum_grad: int = 1  # micro-batches per optimiser step
    max_frames: int = 20000  # feature frames per batch (sum over utterances)
    seed: int = 0
    num_threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast on GPU; CPU falls back to fp32)
    allow_cpu_autocast: bool = False  # run bf16 autocast on CPU too (slow; exercises the code path)
    keep_last: int = 5  # epoch checkpoints kept on disk; 0 keeps all
    average_last: int = 5  # checkpoints averaged into avg-N.pt at the end (paper: 5); 0 disables
    init_from: str | None = None  # checkpoint whose weights initialise the model (stage-2 fine-tuning)
    init_encoder_from: str | None = None  # checkpoint whose encoder.* weights initialise the encoder only
    log_interval: int = 10  # optimiser steps between per-step metric rows
    max_bad_steps: int = 20  # consecutive non-finite losses before training stops
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower; bit-exact reruns)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    find_unused_parameters: bool = False  # DDP option, for models with parameters outside the loss
    progress: bool = True  # tqdm progress bars


@dataclass
class ExperimentConfig:
    name: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    kd: Any = None  # kdlab.kd.config.KDConfig or None


# ----------------------------------------------------------------------------- dict <-> dataclass


def check_value(value: Any, hint: Any, key: str) -> Any:
    """Check (and gently coerce: int → float) ``value`` against a type hint; error names ``key``."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_value(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: must not be null")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, key)
    base = origin or hint
    if base is float:
        return _finite_float(value, key)
    if base is list and isinstance(value, tuple):
        return list(value)
    if base is tuple and isinstance(value, (list, tuple)):
        return _check_tuple(value, typing.get_args(hint), key)
    if base in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{key}: expected {base.__name__}, got {value!r}")
    if isinstance(base, type) and not isinstance(value, base):
        raise ConfigError(f"{key}: expected {base.__name__}, got {value!r}")
    return value


def _check_tuple(value: list | tuple, args: tuple, key: str) -> tuple:
    """A YAML list as a fixed-length tuple (``tuple[float, float]``), each item checked against its type."""
    if args and args[-1] is not Ellipsis and len(args) != len(value):
        raise ConfigError(f"{key}: expected {len(args)} values, got {list(value)!r}")
    kinds = [args[0]] * len(value) if args and args[-1] is Ellipsis else list(args) or [Any] * len(value)
    return tuple(check_value(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, kinds, strict=True)))


def _finite_float(value: Any, key: str) -> float:
    """``value`` as a finite float (an int, a float or a numeric string: YAML 1.1 reads "1e-3" as a string);
    NaN, infinities, booleans and other strings raise :class:`ConfigError` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key}: expected float, got {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise ConfigError(f"{key}: expected float, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    return number


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys and wrong types raise ConfigError."""
    where = prefix or "config"
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = field_names(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key '{dotted}' (allowed: {', '.join(sorted(names))})")
        kwargs[key] = check_value(value, hints[key], dotted)
    return cls(**kwargs)


def check_fields(cls: type, data: Any, prefix: str) -> dict[str, Any]:
    """Some fields of dataclass ``cls`` (a partial section, e.g. a preset's ``train`` changes) checked
    against their type hints without building ``cls``; returns them coerced. Unknown keys, wrong types and
    non-finite floats raise :class:`ConfigError` naming ``prefix.key``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a mapping, got {data!r}")
    if keys := unknown_keys(cls, data):
        raise ConfigError(f"unknown config key '{prefix}.{keys[0]}' (allowed: {', '.join(sorted(field_names(cls)))})")
    hints = typing.get_type_hints(cls)
    return {key: check_value(value, hints[key], f"{prefix}.{key}") for key, value in data.items()}


def field_names(cls: type) -> set[str]:
    """The field names of dataclass ``cls``: the keys its config section may have."""
    return {f.name for f in dataclasses.fields(cls)}


def unknown_keys(cls: type, data: dict) -> list[str]:
    """The keys of ``data`` that are no field of dataclass ``cls``, sorted."""
    return sorted(set(data) - field_names(cls))


def from_dict_strict(cls: type, data: dict, key: str, unknown: str) -> Any:
    """``from_dict`` for a dataclass's own ``from_dict``: unknown keys raise ConfigError with the message
    ``unknown`` formatted with ``{keys}`` (the unknown ones, sorted) and ``{known}``."""
    if keys := unknown_keys(cls, data):
        raise ConfigError(unknown.format(keys=keys, known=sorted(field_names(cls))))
    return from_dict(cls, data, key)


class DictConfig:
    """Mixin of a settings dataclass: ``to_dict`` / ``from_dict`` through this module's mechanism.

    A subclass sets ``CONFIG_KEY`` (its section, for error messages) and ``UNKNOWN_KEYS`` (the message
    for unknown keys, formatted with ``{keys}`` and ``{known}``).
    """

    CONFIG_KEY: typing.ClassVar[str] = "config"
    UNKNOWN_KEYS: typing.ClassVar[str] = "unknown keys {keys}; known: {known}"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML / checkpoint friendly)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Any:
        """Inverse of ``to_dict``; unknown keys and wrong types raise :class:`ConfigError` (a ValueError)."""
        return from_dict_strict(cls, dict(data or {}), cls.CONFIG_KEY, cls.UNKNOWN_KEYS)


def validated_from_dict(cls: type, data: Any, key: str) -> Any:
    """``from_dict`` for a dataclass that validates its own ranges: its ValueError becomes a ConfigError."""
    try:
        return from_dict(cls, data, key)
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list/scalars of a (nested) dataclass, ready for YAML or a checkpoint."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _kd_from_dict(data: Any) -> Any:
    if data is None:
        return None
    from kdlab.kd.config import KDConfig

    return validated_from_dict(KDConfig, data, "kd")


def config_from_dict(data: dict) -> ExperimentConfig:
    """ExperimentConfig from a nested dict (as read from YAML), validated."""
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping at the top level, got {type(data).__name__}")
    data = dict(data)
    kd = data.pop("kd", None)
    cfg = from_dict(ExperimentConfig, data)
    cfg.kd = _kd_from_dict(kd)
    validate(cfg)
    return cfg


def _choice(value: Any, allowed: tuple, key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")


def _positive(value: int | float, key: str, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def validate(cfg: ExperimentConfig) -> None:
    """Range and choice checks that the type hints cannot express."""
    _choice(cfg.data.tokenizer, TOKENIZER_KINDS, "data.tokenizer")
    _choice(cfg.model.kind, MODEL_KINDS, "model.kind")
    _choice(cfg.train.optimizer, OPTIMIZERS, "train.optimizer")
    _choice(cfg.train.precision, PRECISIONS, "train.precision")
    t = cfg.train
    for key in ("epochs", "accum_grad", "max_frames", "log_interval", "max_bad_steps"):
        _positive(getattr(t, key), f"train.{key}")
    _positive(t.lr, "train.lr")  # grad_clip may be any finite number (<= 0: no clipping); from_dict checked it
    for key in ("warmup_steps", "weight_decay", "num_threads", "keep_last", "average_last"):
        _positive(getattr(t, key), f"train.{key}", allow_zero=True)
    _positive(cfg.data.vocab_size, "data.vocab_size")
    if t.keep_last and t.average_last > t.keep_last:
        raise ConfigError(f"train.average_last ({t.average_last}) exceeds train.keep_last ({t.keep_last})")
    if len(t.betas) != 2:
        raise ConfigError(f"train.betas: expected two numbers, got {t.betas!r}")
    if cfg.model.preset is None and not cfg.model.config:
        raise ConfigError("model: give a preset name or the full ModelConfig in model.config")


# ----------------------------------------------------------------------------- overrides and YAML


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides to a nested dict (values parsed by ``yaml.safe_load``)."""
    data = dict(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected the form section.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: cannot parse the value ({err})") from err
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: '{'.'.join(parts[: i + 1])}' is not a section")
            node[part] = dict(child)
            node = node[part]
        node[parts[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    """A YAML file's mapping (empty file → {}); errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML config, apply dotted overrides, validate. Errors name the file and the key."""
    data = apply_overrides(read_yaml(path), overrides or [])
    try:
        return config_from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML (sections in declaration order)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True), encoding="utf-8")


def resolve_model_config(section: ModelSection) -> Any:
    """The ModelConfig for a model section: preset (if any) updated by ``section.config``."""
    from kdlab.models.config import PRESETS, ModelConfig

    if section.preset is not None:
        if section.preset not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {section.preset!r} (have {', '.join(PRESETS)})")
        base = to_dict(PRESETS[section.preset])
    else:
        base = {}
    base.update(section.config)
    return validated_from_dict(ModelConfig, base, "model.config")
