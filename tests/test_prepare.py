"""Real-corpus preparation on tiny fake trees in the official LibriSpeech, AISHELL-1 and Kaldi layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kdlab.cli import main as cli_main
from kdlab.data.manifest import read_manifest
from kdlab.data.prepare import PrepareError, prepare_aishell, prepare_kaldi, prepare_librispeech
from kdlab.data.synth.augment import resample
from kdlab.data.synth.espeak import Espeak


def speech(text: str, voice: str) -> np.ndarray:
    engine = Espeak.get()
    return resample(engine.synth(text, voice).astype(np.float32) / 32768, engine.sample_rate, 16000)


def write(path: Path, wave: np.ndarray, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, 16000, subtype="PCM_16", format=fmt)
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- LibriSpeech
EN = {
    "84-121123-0000": "GO DO YOU HEAR",
    "84-121123-0001": "BUT IN LESS THAN FIVE MINUTES THE STAIRCASE GROANED",
    "84-121123-0002": "AT THIS MOMENT THE WHOLE SOUL OF THE OLD MAN SEEMED CENTRED IN HIS EYES",
    "174-50561-0000": "FORGOTTEN TOO THE NAME OF GILLIAN THE LOVELY CAPTIVE",
}


@pytest.fixture(scope="module")
def libri(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("libri")
    base = root / "LibriSpeech"
    for utt, text in EN.items():
        spk, chap, _ = utt.split("-")
        split = "dev-clean" if spk == "84" else "test-clean"
        if utt != "84-121123-0002":  # transcript without audio
            write(base / split / spk / chap / f"{utt}.flac", speech(text.lower(), "en-us+m2"), "FLAC")
    write(base / "dev-clean/84/121123/84-121123-0009.flac", speech("no transcript", "en+f2"), "FLAC")
    (base / "dev-clean/84/121123/84-121123.trans.txt").write_text(
        "".join(f"{u} {t}\n" for u, t in EN.items() if u.startswith("84-")))
    (base / "test-clean/174/50561/174-50561.trans.txt").write_text(f"174-50561-0000 {EN['174-50561-0000']}\n")
    return root


def test_librispeech_manifests(libri, tmp_path):
    report = prepare_librispeech(libri, tmp_path)
    dev = lines(tmp_path / "dev-clean.jsonl")
    assert [r["id"] for r in dev] == ["84-121123-0000", "84-121123-0001"]
    assert dev[1]["text"] == EN["84-121123-0001"] and dev[1]["speaker"] == "84"
    assert Path(dev[0]["path"]).is_absolute()
    assert abs(dev[0]["duration"] - sf.info(dev[0]["path"]).duration) < 1e-3
    assert lines(tmp_path / "dev.jsonl") == dev and [r["id"] for r in lines(tmp_path / "test.jsonl")] == [
        "174-50561-0000"]
    assert report.counts() == {"missing_audio": 1, "missing_transcript": 1}
    kinds = {p["id"]: p["kind"] for p in report.problems}
    assert kinds == {"84-121123-0002": "missing_audio", "84-121123-0009": "missing_transcript"}
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["language"] == "en" and info["splits"]["dev-clean"]["utterances"] == 2
    saved = json.loads((tmp_path / "prepare_report.json").read_text())
    assert saved["counts"]["missing_audio"] == 1
    assert read_manifest(tmp_path / "test-clean.jsonl")[0]["text"].startswith("FORGOTTEN")


def test_librispeech_selected_and_missing_splits(libri, tmp_path):
    prepare_librispeech(libri / "LibriSpeech", tmp_path, splits=["test-clean"])
    assert not (tmp_path / "dev-clean.jsonl").exists() and (tmp_path / "test-clean.jsonl").exists()
    with pytest.raises(PrepareError, match="train-clean-100: split not found"):
        prepare_librispeech(libri, tmp_path, splits=["train-clean-100"])
    with pytest.raises(PrepareError, match="no split"):
        prepare_librispeech(tmp_path, tmp_path / "x")


# ---------------------------------------------------------------- AISHELL-1
ZH = {
    "BAC009S0002W0122": ("train", "而 对 楼市 成交 抑制 作用 最 大 的 限 购"),
    "BAC009S0002W0123": ("train", "也 成为 地方 政府 的 眼中 钉"),
    "BAC009S0724W0121": ("dev", "甚至 出现 交易 几乎 停滞 的 情况"),
    "BAC009S0764W0121": ("test", "甚至 出现 交易 几乎 停滞 的 情况"),
}


def _aishell(root: Path) -> Path:
    base = root / "data_aishell"
    for utt, (split, words) in ZH.items():
        wave = speech("".join(words.split()), "cmn+f2")
        write(base / "wav" / split / utt[6:11] / f"{utt}.wav", wave, "WAV")
    write(base / "wav/test/S0764/BAC009S0764W0999.wav", speech("你好", "cmn"), "WAV")  # no transcript
    trans = base / "transcript" / "aishell_transcript_v0.8.txt"
    trans.parent.mkdir(parents=True)
    body = "".join(f"{u} {w}\n" for u, (_, w) in ZH.items()) + "BAC009S0002W0500 没有 音频\n"
    trans.write_text(body, encoding="utf-8")
    return root


def test_aishell_manifests(tmp_path):
    root = _aishell(tmp_path / "src")
    report = prepare_aishell(root, tmp_path / "out")
    train = lines(tmp_path / "out" / "train.jsonl")
    assert [r["text"] for r in train] == ["而对楼市成交抑制作用最大的限购", "也成为地方政府的眼中钉"]
    assert train[0]["speaker"] == "S0002" and train[0]["duration"] > 0.5
    assert [r["id"] for r in lines(tmp_path / "out" / "test.jsonl")] == ["BAC009S0764W0121"]
    assert report.counts() == {"missing_audio": 1, "missing_transcript": 1}
    assert json.loads((tmp_path / "out" / "info.json").read_text())["unit"] == "char"


def test_aishell_layout_errors(tmp_path):
    (tmp_path / "data_aishell" / "wav").mkdir(parents=True)
    with pytest.raises(PrepareError, match="v0.8.txt: AISHELL-1 transcript file not found"):
        prepare_aishell(tmp_path, tmp_path / "out")
    (tmp_path / "data_aishell" / "transcript").mkdir()
    (tmp_path / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt").write_text("")
    (tmp_path / "data_aishell" / "wav" / "S0002.tar.gz").write_bytes(b"")
    with pytest.raises(PrepareError, match="extract the per-speaker"):
        prepare_aishell(tmp_path, tmp_path / "out")


# ---------------------------------------------------------------- Kaldi data dirs
def _kaldi(folder: Path) -> Path:
    data = folder / "data" / "dev"
    data.mkdir(parents=True)
    a = write(folder / "wav" / "a.wav", speech("good morning", "en-us+f1"), "WAV")
    b = write(folder / "wav" / "b.flac", speech("good night", "en-us+m1"), "FLAC")
    (data / "wav.scp").write_text(f"spk1-a {a}\nspk2-b {b}\nspk3-c {folder / 'wav' / 'c.wav'}\nspk4-d {a}\n")
    (data / "text").write_text("spk1-a GOOD MORNING\nspk2-b GOOD NIGHT\nspk3-c NO FILE\nspk9-z NO AUDIO\n")
    (data / "utt2spk").write_text("spk1-a alice\nspk2-b bob\n")
    return data


def test_kaldi_manifest(tmp_path):
    data = _kaldi(tmp_path)
    report = prepare_kaldi(data, tmp_path / "out" / "dev.jsonl")
    recs = lines(tmp_path / "out" / "dev.jsonl")
    assert [(r["id"], r["speaker"], r["text"]) for r in recs] == [
        ("spk1-a", "alice", "GOOD MORNING"), ("spk2-b", "bob", "GOOD NIGHT")]
    kinds = {p["id"]: p["kind"] for p in report.problems}
    assert kinds == {"spk9-z": "missing_audio", "spk4-d": "missing_transcript", "spk3-c": "unreadable_audio"}
    assert (tmp_path / "out" / "dev.prepare_report.json").is_file()


@pytest.mark.parametrize("scp,match", [
    ("u1 sox a.wav -t wav - |\n", "utterance 'u1': only plain file paths"),
    ("u1 ark:/x/feats.ark:12\n", "utterance 'u1': only plain file paths"),
    ("u1 a.wav\nu1 b.wav\n", r"wav.scp:2: duplicate key 'u1'"),
])
def test_kaldi_unsupported_inputs(tmp_path, scp, match):
    (tmp_path / "wav.scp").write_text(scp)
    (tmp_path / "text").write_text("u1 HELLO\n")
    with pytest.raises(PrepareError, match=match):
        prepare_kaldi(tmp_path, tmp_path / "o.jsonl")


def test_kaldi_segments_and_missing_files(tmp_path):
    with pytest.raises(PrepareError, match="wav.scp: required Kaldi file not found"):
        prepare_kaldi(tmp_path, tmp_path / "o.jsonl")
    (tmp_path / "wav.scp").write_text("rec1 a.wav\n")
    (tmp_path / "text").write_text("u1 HELLO\n")
    (tmp_path / "segments").write_text("u1 rec1 0.0 1.0\n")
    with pytest.raises(PrepareError, match="segments: segmented recordings are not supported"):
        prepare_kaldi(tmp_path, tmp_path / "o.jsonl")


# ---------------------------------------------------------------- command line
def test_cli_prepare_and_check(tmp_path, capsys):
    data = _kaldi(tmp_path)
    assert cli_main(["data", "prepare", "kaldi", str(data), "--out", str(tmp_path / "m")]) == 0
    assert [r["id"] for r in lines(tmp_path / "m" / "dev.jsonl")] == ["spk1-a", "spk2-b"]
    assert "missing_audio" in capsys.readouterr().out
    assert cli_main(["data", "check", str(tmp_path / "m" / "dev.jsonl")]) == 0
    assert "kept 2" in capsys.readouterr().out
    assert cli_main(["data", "prepare", "aishell", str(tmp_path), "--out", str(tmp_path / "a")]) == 2
    assert "transcript file not found" in capsys.readouterr().err


def test_non_utf8_transcripts_name_file_and_line(tmp_path, capsys):
    """A Latin-1 transcript: prepare (kaldi, librispeech) and manifest readers (check, train, decode) name
    the file and the line, as one line with exit code 2 from the CLI."""
    data = _kaldi(tmp_path)
    (data / "text").write_bytes("spk1-a GOOD MORNING\nspk2-b CAF\u00c9 NIGHT\n".encode("latin-1"))
    with pytest.raises(PrepareError, match=r"text:2: not valid UTF-8"):
        prepare_kaldi(data, tmp_path / "out" / "dev.jsonl")
    assert cli_main(["data", "prepare", "kaldi", str(data), "--out", str(tmp_path / "o.jsonl")]) == 2
    out = capsys.readouterr().err.strip()
    assert out.endswith("text:2: not valid UTF-8 (invalid continuation byte at byte 10 of the line: "
                        "b'spk2-b CAF\\xc9 NIGHT'); re-encode the file as UTF-8") and "\n" not in out
    chapter = tmp_path / "LibriSpeech" / "dev-clean" / "1" / "2"
    chapter.mkdir(parents=True)
    (chapter / "1-2.trans.txt").write_bytes("1-2-0000 CAF\u00c9\n".encode("latin-1"))
    with pytest.raises(PrepareError, match=r"1-2.trans.txt:1: not valid UTF-8"):
        prepare_librispeech(tmp_path / "LibriSpeech", tmp_path / "ls")
    manifest = tmp_path / "m.jsonl"
    good = json.dumps({"id": "u", "path": "a.wav", "duration": 1.0, "text": "x", "speaker": "s"})
    manifest.write_bytes((good + "\n" + good.replace('"x"', '"caf\u00e9"')).encode("latin-1") + b"\n")
    from kdlab.data.manifest import ManifestError

    with pytest.raises(ManifestError, match=r"m.jsonl:2: not valid UTF-8"):
        read_manifest(manifest)
    assert cli_main(["data", "check", str(manifest)]) == 2
    assert "m.jsonl:2: not valid UTF-8" in capsys.readouterr().err
