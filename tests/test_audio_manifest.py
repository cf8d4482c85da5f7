"""Audio loading, JSONL manifests and the validation pass with its skip report (every bad-input case)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from kdlab.data.audio import AudioError, load_audio
from kdlab.data.manifest import (
    ManifestError,
    ctc_min_frames,
    ctc_output_frames,
    read_manifest,
    validate,
    write_manifest,
)
from kdlab.data.synth.augment import resample
from kdlab.data.synth.espeak import Espeak

ALPHABET = "abcdefghijklmnopqrstuvwxyz '"


def speech(text: str, voice: str = "en-us+m3", sr: int = 16000) -> np.ndarray:
    """Real synthesized speech at ``sr`` (float32, (N,))."""
    engine = Espeak.get()
    raw = engine.synth(text, voice).astype(np.float32) / 32768
    return resample(raw, engine.sample_rate, sr)


def toy_encode(text: str) -> list[int]:
    """Character tokenizer over a-z, space and apostrophe (ids from 4); anything else is <unk> = 1."""
    return [ALPHABET.index(c) + 4 if c in ALPHABET else 1 for c in text.lower()]


@pytest.fixture(scope="module")
def wave() -> np.ndarray:
    return speech("The weather is cold today.")


# ---------------------------------------------------------------- load_audio
def test_load_16k_mono(tmp_path, wave):
    path = tmp_path / "a.flac"
    sf.write(path, wave, 16000, subtype="PCM_16")
    out = load_audio(path)
    assert out.dtype.is_floating_point and out.ndim == 1 and out.shape[0] == len(wave)
    assert np.max(np.abs(out.numpy() - wave)) < 1e-3  # PCM16 quantisation only


def test_load_resamples_8k(tmp_path, wave):
    path = tmp_path / "a8k.wav"
    sf.write(path, resample(wave, 16000, 8000), 8000, subtype="PCM_16")
    out = load_audio(path)
    assert abs(out.shape[0] - len(wave)) <= 2


def test_load_downmixes_stereo(tmp_path, wave):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([wave, 0.5 * wave], axis=1), 16000, subtype="FLOAT")
    out = load_audio(path)
    assert out.shape == (len(wave),)
    assert np.allclose(out.numpy(), 0.75 * wave, atol=1e-6)


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"), (b"RIFF\x00\x01garbage" * 20, "unreadable or corrupt")])
def test_load_bad_files_name_the_file(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=match) as err:
        load_audio(path)
    assert "bad.wav" in str(err.value) and isinstance(err.value, ValueError)


def test_load_missing_and_zero_frames(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no samples"):
        load_audio(path)


# ---------------------------------------------------------------- manifests
def test_manifest_roundtrip_and_relative_paths(tmp_path):
    recs = [{"id": "u1", "path": "audio/u1.flac", "duration": 1.5, "text": "hello", "speaker": "s1"},
            {"id": "u2", "path": "/abs/u2.flac", "duration": 2.0, "text": "你好", "speaker": "s2",
             "voice": "cmn"}]
    write_manifest(tmp_path / "m.jsonl", recs)
    assert "你好" in (tmp_path / "m.jsonl").read_text(encoding="utf-8")  # UTF-8, not escaped
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0]["path"] == str((tmp_path / "audio" / "u1.flac").resolve())
    assert back[1]["path"] == "/abs/u2.flac" and back[1]["voice"] == "cmn"


@pytest.mark.parametrize("line,match", [
    ("{not json", r"m.jsonl:2: not valid JSON"),
    ('{"id": "x", "path": "a.wav", "text": "t"}',
     r"m.jsonl:2: record lacks field\(s\) duration, speaker"),
    ('{"id": "u1", "path": "a.wav", "duration": 1, "text": "t", "speaker": "s"}',
     "duplicate utterance id 'u1'"),
])
def test_manifest_errors_name_the_line(tmp_path, line, match):
    good = '{"id": "u1", "path": "a.wav", "duration": 1, "text": "t", "speaker": "s"}'
    (tmp_path / "m.jsonl").write_text(good + "\n" + line + "\n")
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path / "m.jsonl")


# ---------------------------------------------------------------- CTC length rule
def test_ctc_frame_arithmetic():
    # 1 s at 16 kHz: T = 1 + (16000 - 400) // 160 = 98 fbank frames; T' = ((98-1)//2 - 1)//2 = 23
    assert ctc_output_frames(1.0) == 23
    assert ctc_output_frames(1.0, subsampling=1) == 98
    assert ctc_output_frames(0.02) == 0  # shorter than one window
    assert ctc_min_frames([5, 6, 7]) == 3
    assert ctc_min_frames([5, 5, 6, 6, 6]) == 8  # three repeats need three separating blanks
    with pytest.raises(ValueError):
        ctc_output_frames(1.0, subsampling=3)


# ---------------------------------------------------------------- validation
def _case(folder: Path, uid: str, audio: np.ndarray | bytes | None, text: str, sr: int = 16000) -> dict:
    path = folder / f"{uid}.wav"
    if isinstance(audio, bytes):
        path.write_bytes(audio)
    elif audio is not None:
        sf.write(path, audio, sr, subtype="PCM_16")
    return {"id": uid, "path": str(path), "duration": 0.0, "text": text, "speaker": "s"}


def test_validate_counts_every_bad_item(tmp_path, wave):
    half = wave[: len(wave) // 2]
    records = [
        _case(tmp_path, "good", wave, "the weather is cold today"),
        _case(tmp_path, "corrupt", b"\x00\x01 this is not audio" * 30, "hello"),
        _case(tmp_path, "empty", b"", "hello"),
        _case(tmp_path, "rate8k", resample(wave, 16000, 8000), "the weather is cold today", sr=8000),
        _case(tmp_path, "stereo", np.stack([wave, wave], axis=1), "the weather is cold today"),
        _case(tmp_path, "short", wave[:4000], "the weather is cold today and tomorrow it will be warm"),
        _case(tmp_path, "notext", half, "   "),
        _case(tmp_path, "oov", half, "the weather is 冷"),
        _case(tmp_path, "missing", None, "hello"),
    ]
    kept, report = validate(records, toy_encode, unk_id=1)
    assert [r["id"] for r in kept] == ["good", "rate8k", "stereo"]
    assert report.total == 9 and report.kept == 3
    assert report.counts() == {"unreadable_audio": 2, "empty_audio": 1, "empty_transcript": 1, "oov": 1,
                               "too_short": 1}
    by_id = {s["id"]: s for s in report.skips}
    assert by_id["oov"]["detail"] == "out-of-vocabulary: 冷"
    assert "CTC needs" in by_id["short"]["detail"] and by_id["short"]["path"].endswith("short.wav")
    assert "corrupt.wav" in by_id["corrupt"]["detail"]
    table = report.table()
    for uid in ("corrupt", "empty", "short", "notext", "oov", "missing"):
        assert uid in table
    report.save(tmp_path / "skips.json")
    saved = json.loads((tmp_path / "skips.json").read_text(encoding="utf-8"))
    assert saved["kept"] == 3 and saved["counts"]["too_short"] == 1 and len(saved["skips"]) == 6


def test_validate_deep_catches_truncated_data(tmp_path, wave):
    rec = _case(tmp_path, "trunc", wave, "hello")
    data = Path(rec["path"]).read_bytes()
    Path(rec["path"]).write_bytes(data[:44])  # header only: frames claim more than there is
    kept, report = validate([rec], None, None, deep=True)
    assert not kept and report.skips[0]["reason"] in {"unreadable_audio", "empty_audio"}


def test_validate_without_tokenizer_checks_audio_and_text_only(tmp_path, wave):
    recs = [_case(tmp_path, "a", wave[:2000], "a very long transcript that would never fit"),
            _case(tmp_path, "b", wave, "")]
    kept, report = validate(recs)
    assert [r["id"] for r in kept] == ["a"] and report.counts() == {"empty_transcript": 1}


# ---------------------------------------------------------------- absurd audio levels
def _loud(folder: Path, wave: np.ndarray) -> dict:
    """Speech × 1e30 in a float WAV: decodable, but its fbank is not finite."""
    rec = _case(folder, "loud", None, "hello")
    sf.write(rec["path"], wave * 1e30, 16000, subtype="FLOAT")
    return rec


def test_deep_check_catches_absurd_audio_level(tmp_path, wave, capsys):
    from kdlab.cli import main

    recs = [_loud(tmp_path, wave), _case(tmp_path, "ok", wave, "hello")]
    kept, report = validate(recs, deep=True)
    assert [r["id"] for r in kept] == ["ok"] and report.counts() == {"bad_samples": 1}
    assert "absurd audio level" in report.skips[0]["detail"]
    write_manifest(tmp_path / "m.jsonl", recs)
    assert main(["data", "check", str(tmp_path / "m.jsonl"), "--deep"]) == 1
    assert "bad_samples" in capsys.readouterr().out


def test_cmvn_skips_bad_audio_and_refuses_non_finite_statistics(tmp_path, wave):
    from kdlab.data.dataset import fit_cmvn
    from kdlab.data.features import GlobalCMVN
    from kdlab.data.manifest import SkipReport

    recs = [_loud(tmp_path, wave), _case(tmp_path, "ok", wave, "hello")]
    with pytest.raises(AudioError, match="absurd audio level"):
        fit_cmvn(recs)
    report = SkipReport(total=2)
    cmvn = fit_cmvn(recs, report=report)
    assert report.counts() == {"bad_samples": 1} and report.skips[0]["id"] == "loud"
    assert torch.isfinite(cmvn.mean).all() and torch.isfinite(cmvn.std).all()
    assert torch.allclose(cmvn.mean, fit_cmvn(recs[1:]).mean)  # as if the loud item were not there
    with pytest.raises(ValueError, match="not finite"):
        GlobalCMVN(torch.full((80,), float("nan")), torch.ones(80))
    (tmp_path / "cmvn.json").write_text(json.dumps({"mean": [float("nan")] * 3, "std": [1.0] * 3}))
    with pytest.raises(ValueError, match="cmvn.json: not a CMVN file"):
        GlobalCMVN.load(tmp_path / "cmvn.json")
