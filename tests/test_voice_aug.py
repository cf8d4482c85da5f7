"""Voice and channel augmentation on the raw log-mel fbank (VTLP, band limit, noise, reverberation)."""

from __future__ import annotations

import math

import pytest
import torch

from kdlab.config import ConfigError, ExperimentConfig, from_dict
from kdlab.data import voice_aug as V
from kdlab.data.dataset import ASRDataset
from kdlab.data.features import compute_fbank
from kdlab.data.manifest import read_manifest
from kdlab.data.tokenizer import CharTokenizer
from kdlab.training.data import voice_aug_config


def _tone_feats(hz: float, frames: int = 50) -> torch.Tensor:
    """The fbank of a pure tone: (T, 80), its peak in the band of ``hz``."""
    t = torch.arange(int(16000 * frames / 100)) / 16000
    return compute_fbank(0.3 * torch.sin(2 * math.pi * hz * t))


def _peak_hz(feats: torch.Tensor) -> float:
    return float(V.mel_centres(feats.shape[1])[feats.mean(0).argmax()])


def test_vtlp_moves_the_spectrum_by_the_warp_factor():
    feats = _tone_feats(1000.0)
    assert torch.equal(V.vtlp(feats, 1.0), feats)
    assert _peak_hz(feats) == pytest.approx(1000, rel=0.06)
    assert _peak_hz(V.vtlp(feats, 1.15)) == pytest.approx(1150, rel=0.06)
    assert _peak_hz(V.vtlp(feats, 0.87)) == pytest.approx(870, rel=0.06)


def test_band_limit_drops_the_high_bands_to_the_floor():
    feats = torch.randn(20, 80) + 5
    out = V.band_limit(feats, 4000.0)
    high = V.mel_centres(80) > 4000.0
    assert torch.equal(out[:, ~high], feats[:, ~high]) and bool((out[:, high] == feats.min()).all())


def test_noise_at_the_asked_snr_and_reverberation_tail():
    feats = _tone_feats(500.0, frames=200)
    gen = torch.Generator().manual_seed(0)
    noisy = V.add_noise(feats, 10.0, "pink", gen)
    speech, mixed = feats.exp().sum(1).mean(), noisy.exp().sum(1).mean()
    assert 10 * torch.log10(speech / (mixed - speech)).item() == pytest.approx(10.0, abs=0.5)
    assert V.noise_shape(80, "pink")[:10].sum() > V.noise_shape(80, "white")[:10].sum()  # 1/f: more low
    burst = torch.full((100, 80), -10.0)
    burst[10:20] = 5.0
    wet = V.reverberate(burst, rt60_s=0.5, drr_db=0.0)
    assert bool((wet[:10] < -10 + math.log(2) + 1e-4).all())  # before the sound: the floor's own tail only
    assert wet[25, 0] > burst[25, 0] + 5 and wet[25, 0] > wet[60, 0]  # a tail that decays
    assert torch.allclose(wet[10:20], burst[10:20], atol=0.7)


def test_apply_is_reproducible_and_config_checked():
    feats = _tone_feats(800.0)
    cfg = V.VoiceAugConfig(vtlp=(0.9, 1.1), p_band_limit=1.0, p_noise=1.0, p_reverb=1.0)
    a = V.apply(feats, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a, V.apply(feats, cfg, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, V.apply(feats, cfg, torch.Generator().manual_seed(4)))
    assert not V.VoiceAugConfig().active
    with pytest.raises(ConfigError, match="data.voice_aug.vtlp: expected 2 values"):
        from_dict(V.VoiceAugConfig, {"vtlp": [0.9, 1.0, 1.1]}, "data.voice_aug")
    cfg = from_dict(ExperimentConfig, {"data": {"voice_aug": {"vtlpp": 1}}})
    with pytest.raises(ConfigError, match="unknown config key 'data.voice_aug.vtlpp'"):
        voice_aug_config(cfg)
    assert voice_aug_config(from_dict(ExperimentConfig, {})) is None


def test_dataset_augments_training_features_only(tiny_corpus_en):
    records = read_manifest(tiny_corpus_en / "train.jsonl")[:3]
    tok = CharTokenizer.train([r["text"] for r in records], lang="en")
    cfg = V.VoiceAugConfig(vtlp=(1.1, 1.2), p_noise=1.0)
    plain = ASRDataset(records, tok, None, train=True)
    warped = ASRDataset(records, tok, None, train=True, voice_aug=cfg)
    held = ASRDataset(records, tok, None, train=False, voice_aug=cfg)
    assert not torch.equal(plain[0]["feats"], warped[0]["feats"])
    assert torch.equal(plain[0]["feats"], held[0]["feats"])
    assert torch.equal(warped[1]["feats"], warped[1]["feats"])  # drawn from (seed, epoch, index)
