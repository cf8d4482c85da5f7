"""Fbank, CMVN, SpecAugment, speed perturbation and the feature cache, on small generated signals."""

import math

import pytest
import torch

from kdlab.data.features import (
    SAMPLE_RATE,
    FbankConfig,
    FeatureCache,
    GlobalCMVN,
    SpecAugConfig,
    SpecAugment,
    compute_fbank,
    num_frames,
    speed_perturb,
    time_warp,
)


def sine(freq: float, seconds: float = 1.0, sr: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    return 0.5 * torch.sin(2 * math.pi * freq * t)


def mel(f: float) -> float:
    return 1127.0 * math.log(1.0 + f / 700.0)


def test_fbank_shape_and_peak_bin():
    feats = compute_fbank(sine(1000.0))
    assert feats.shape == (98, 80) and feats.dtype == torch.float32  # 1 + (16000 - 400) // 160
    assert num_frames(16000) == 98 and num_frames(399) == 0 and num_frames(400) == 1
    # Kaldi mel bins: 80 triangles between 20 Hz and 8 kHz, equally spaced on the mel scale
    step = (mel(8000.0) - mel(20.0)) / 81
    expected = round((mel(1000.0) - mel(20.0)) / step) - 1
    assert abs(int(feats.mean(0).argmax()) - expected) <= 1


def test_fbank_scaling_and_dither():
    wave = sine(440.0, 0.5)
    loud = compute_fbank(wave * 2)
    # doubling the amplitude adds log(4) to every power-spectrum log-mel value
    assert torch.allclose(loud - compute_fbank(wave), torch.full_like(loud, math.log(4.0)), atol=1e-3)
    assert torch.equal(compute_fbank(wave), compute_fbank(wave))  # dither 0 is deterministic
    assert not torch.equal(compute_fbank(wave, dither=1.0), compute_fbank(wave, dither=1.0))


def test_fbank_bad_input_names_the_item():
    with pytest.raises(ValueError, match="utt7: audio too short"):
        compute_fbank(torch.zeros(100), name="utt7")
    with pytest.raises(ValueError, match="utt8: waveform contains NaN"):
        compute_fbank(torch.full((800,), float("nan")), name="utt8")
    with pytest.raises(ValueError, match="mono"):
        compute_fbank(torch.zeros(2, 800))


def test_speed_perturb_lengths():
    wave = sine(300.0)
    assert speed_perturb(wave, 1.0) is wave
    assert abs(speed_perturb(wave, 0.9).numel() - 16000 / 0.9) <= 2
    assert abs(speed_perturb(wave, 1.1).numel() - 16000 / 1.1) <= 2
    # a faster speed raises the pitch: 300 Hz at speed 1.1 becomes 330 Hz
    spec = torch.fft.rfft(speed_perturb(wave, 1.1)).abs()
    peak_hz = int(spec.argmax()) * 16000 / (2 * (spec.numel() - 1))
    assert abs(peak_hz - 330.0) < 3


def test_global_cmvn_fit_apply_save(tmp_path):
    a = torch.tensor([[1.0, 10.0], [3.0, 10.0]])
    b = torch.tensor([[5.0, 40.0]])
    cmvn = GlobalCMVN.fit([a, b])
    assert cmvn.count == 3
    assert torch.allclose(cmvn.mean, torch.tensor([3.0, 20.0]))
    assert torch.allclose(cmvn.std, torch.tensor([math.sqrt(8 / 3), math.sqrt(200.0)]))
    out = cmvn(torch.cat([a, b]))
    assert torch.allclose(out.mean(0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(out.var(0, unbiased=False), torch.ones(2), atol=1e-5)
    cmvn.save(tmp_path / "cmvn.json")
    again = GlobalCMVN.load(tmp_path / "cmvn.json")
    assert torch.equal(again.mean, cmvn.mean) and torch.equal(again.std, cmvn.std)
    with pytest.raises(ValueError, match="fitted on 2"):
        cmvn(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="no feature frames"):
        GlobalCMVN.fit([])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a CMVN file"):
        GlobalCMVN.load(tmp_path / "bad.json")


def test_specaugment_respects_lengths_and_seed():
    cfg = SpecAugConfig(num_freq_masks=2, freq_mask_width=10, num_time_masks=2, time_mask_width=5)
    aug = SpecAugment(cfg)
    feats = torch.full((3, 50, 20), 7.0)
    feats[:, :, :] += torch.arange(20.0)  # distinct non-zero values per bin
    lens = torch.tensor([50, 30, 12])
    for b, n in enumerate(lens.tolist()):
        feats[b, n:] = -5.0  # padding marker
    out1 = aug(feats, lens, torch.Generator().manual_seed(3))
    out2 = aug(feats, lens, torch.Generator().manual_seed(3))
    assert torch.equal(out1, out2) and out1.shape == feats.shape
    for b, n in enumerate(lens.tolist()):
        assert (out1[b, n:] == -5.0).all()  # padding untouched
        masked = out1[b, :n] == 0.0
        zero_cols = masked.all(0).sum().item()
        assert zero_cols <= 2 * 10  # at most two freq masks of width ≤ 10
        time_rows = masked.all(1).sum().item()
        assert time_rows <= 2 * 5 or zero_cols == 20  # two time masks of width ≤ 5
    many = [aug(feats, lens, torch.Generator().manual_seed(s)) for s in range(20)]
    assert any((m == 0).any() for m in many)  # masks do happen


def test_specaugment_time_mask_ratio():
    aug = SpecAugment(SpecAugConfig(num_freq_masks=0, num_time_masks=1, time_mask_width=1000,
                                    time_mask_ratio=0.1, time_warp_window=0))
    x = torch.ones(40, 8)
    for s in range(30):
        rows = (aug(x, generator=torch.Generator().manual_seed(s)) == 0).all(1).sum().item()
        assert rows <= 4


def test_time_warp_keeps_shape_and_order():
    ramp = torch.arange(60.0).unsqueeze(1).repeat(1, 4)  # (T, D) increasing in time
    warped = [time_warp(ramp, 5, torch.Generator().manual_seed(s)) for s in range(10)]
    assert all(w.shape == ramp.shape for w in warped)
    assert all((w[1:, 0] >= w[:-1, 0] - 1e-5).all() for w in warped)  # still monotonic
    assert any(not torch.allclose(w, ramp) for w in warped)
    assert torch.equal(time_warp(ramp[:8], 5), ramp[:8])  # too short to warp


def test_feature_cache_roundtrip(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return torch.randn(5, 80)

    cache = FeatureCache(tmp_path)
    first = cache.get_or_compute("spk1/utt 1", 0.9, compute)
    second = FeatureCache(tmp_path).get_or_compute("spk1/utt 1", 0.9, compute)
    assert torch.equal(first, second) and len(calls) == 1
    assert cache.get("spk1/utt 1", 1.0) is None  # speed is part of the key
    assert cache.path("a/b", 1.0) != cache.path("a_b", 1.0)
    assert cache.path("a/b", 1.0).parent.name == FbankConfig().tag
    cache.path("broken", 1.0).write_bytes(b"not a tensor")
    assert cache.get("broken", 1.0) is None


def test_feature_cache_recomputes_after_the_audio_changes(tmp_path):
    """A corpus rebuilt in place (same ids, new audio of the same size, an older file time) must not be read
    from stale cache entries; unchanged audio with a newer file time is still a hit (keyed by content)."""
    import os

    audio = tmp_path / "utt.flac"
    audio.write_bytes(b"old")
    cache = FeatureCache(tmp_path / "cache")
    old = cache.get_or_compute("utt", 1.0, lambda: torch.zeros(3, 80), audio)
    assert torch.equal(cache.get_or_compute("utt", 1.0, lambda: torch.ones(3, 80), audio), old)  # fresh: kept
    os.utime(audio, ns=(10**18 * 2, 10**18 * 2))  # touched, same bytes: still the same features
    assert torch.equal(cache.get_or_compute("utt", 1.0, lambda: torch.ones(3, 80), audio), old)
    audio.write_bytes(b"new")
    os.utime(audio, ns=(10**9, 10**9))  # rewritten, with a file time older than the entry
    assert torch.equal(cache.get_or_compute("utt", 1.0, lambda: torch.ones(3, 80), audio), torch.ones(3, 80))


def test_features_on_embedded_corpus(tiny_corpus_zh):
    from kdlab.data.audio import load_audio
    from kdlab.data.manifest import read_manifest

    rec = read_manifest(tiny_corpus_zh / "train.jsonl")[0]
    wave = load_audio(rec["path"])  # (N,)
    assert abs(wave.numel() / SAMPLE_RATE - rec["duration"]) < 0.01
    feats = compute_fbank(wave, name=rec["id"])
    assert feats.shape == (num_frames(wave.numel()), 80) and torch.isfinite(feats).all()
    # speech has more energy variation over time than the stationary noise floor of one frame
    assert feats.mean(1).std() > 0.5
    for factor in (0.9, 1.1):
        slowed = compute_fbank(speed_perturb(wave, factor))
        assert abs(slowed.shape[0] - feats.shape[0] / factor) <= 2
    cmvn = GlobalCMVN.fit([feats])
    gen = torch.Generator().manual_seed(0)
    out = SpecAugment()(cmvn(feats).unsqueeze(0), torch.tensor([feats.shape[0]]), gen)
    assert out.shape == (1, *feats.shape)
