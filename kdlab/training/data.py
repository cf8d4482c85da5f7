"""Data loaders for training and validation, built from the ``data`` section of an experiment config."""

from __future__ import annotations

from kdlab.config import ConfigError, ExperimentConfig, from_dict
from kdlab.training.runtime import Runtime


def _section(cls: type, value: dict, key: str):
    """Dataclass ``cls`` from the config section ``key``; a bad value is a ConfigError naming the key."""
    try:
        return from_dict(cls, value, key)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{key}: {err}") from None


def specaug_config(cfg: ExperimentConfig):
    """The SpecAugConfig of ``data.specaug_conf`` (None when ``data.specaug`` is off)."""
    from kdlab.data.features import SpecAugConfig

    return _section(SpecAugConfig, cfg.data.specaug_conf, "data.specaug_conf") if cfg.data.specaug else None


def voice_aug_config(cfg: ExperimentConfig):
    """The VoiceAugConfig of ``data.voice_aug`` (None when it turns nothing on)."""
    from kdlab.data.voice_aug import VoiceAugConfig

    found = _section(VoiceAugConfig, cfg.data.voice_aug, "data.voice_aug")
    return found if found.active else None


def build_loader(cfg: ExperimentConfig, records: list[dict], tokenizer, cmvn, rt: Runtime, train: bool):
    """Frame-bucketed loader over a split's usable ``records`` (train: shuffled + augmented), sharded by DDP
    rank; audio that fails to decode is skipped per utterance (``bad`` in the batch) unless ``data.strict``."""
    from kdlab.data.dataset import make_loader

    return make_loader(
        records, tokenizer, cmvn, max_frames=cfg.train.max_frames, train=train, skip_bad=not cfg.data.strict,
        cache_dir=cfg.data.feature_cache, specaug=specaug_config(cfg) if train else None,
        speed_perturb=cfg.data.speed_perturb and train, seed=cfg.train.seed, num_workers=cfg.data.num_workers,
        voice_aug=voice_aug_config(cfg) if train else None, rank=rt.rank, world_size=rt.world_size,
    )


def set_loader_epoch(loader, epoch: int) -> None:
    """Reseed batch order and augmentations for ``epoch`` (they depend on seed and epoch only)."""
    from kdlab.data.dataset import set_epoch

    set_epoch(loader, epoch)
