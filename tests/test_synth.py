"""Embedded corpus synthesis: numbers, morphology, grammars, espeak binding, augmentation, reproducibility."""

from __future__ import annotations

import hashlib
import json
import random
import string
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kdlab.data.synth import augment, grammar_en, grammar_zh, pronounceable, synthesize_corpus
from kdlab.data.synth.espeak import Espeak, EspeakError
from kdlab.data.synth.lexicon_en import parse_verb, plural, regular_ing, regular_past, third_person
from kdlab.data.synth.numbers import en_number, en_ordinal, en_year, zh_number
from kdlab.data.synth.voices import VOICES


# ---------------------------------------------------------------- numbers and morphology
def test_english_numbers():
    assert en_number(0) == "zero"
    assert en_number(42) == "forty two"
    assert en_number(105) == "one hundred and five"
    assert en_number(12345) == "twelve thousand three hundred and forty five"
    assert en_number(2005) == "two thousand and five"
    assert [en_ordinal(n) for n in (1, 2, 3, 12, 20, 23)] == [
        "first", "second", "third", "twelfth", "twentieth", "twenty third"]
    assert en_year(1998) == "nineteen ninety eight"
    assert en_year(1905) == "nineteen oh five"
    assert en_year(2021) == "twenty twenty one"
    with pytest.raises(ValueError):
        en_number(-1)


def test_mandarin_numbers():
    assert zh_number(12) == "十二"
    assert zh_number(35) == "三十五"
    assert zh_number(105) == "一百零五"
    assert zh_number(1010) == "一千零一十"
    assert zh_number(12345) == "一万二千三百四十五"
    assert zh_number(10001) == "一万零一"
    assert zh_number(2) == "二" and zh_number(2, measure=True) == "两"


def test_english_morphology():
    assert [plural(w) for w in ("city", "day", "box", "dish", "dog")] == [
        "cities", "days", "boxes", "dishes", "dogs"]
    assert [third_person(w) for w in ("cook", "wash", "carry", "go", "have")] == [
        "cooks", "washes", "carries", "goes", "has"]
    assert [regular_past(w) for w in ("bake", "carry", "play", "cook")] == [
        "baked", "carried", "played", "cooked"]
    assert [regular_ing(w) for w in ("bake", "see", "tie", "cook")] == [
        "baking", "seeing", "tying", "cooking"]
    eat = parse_verb("eat:ate:eating:eaten")
    assert (eat.base, eat.s3, eat.past, eat.ing, eat.part) == ("eat", "eats", "ate", "eating", "eaten")
    buy = parse_verb("buy:bought")
    assert (buy.past, buy.part, buy.ing) == ("bought", "bought", "buying")


def test_subject_verb_agreement():
    cook = parse_verb("cook")
    NP = grammar_en.NP
    he, they, i = NP(["he"], False, 3), NP(["they"], True, 3), NP(["i"], False, 1)
    assert grammar_en.verb_group(cook, he, "present") == ["cooks"]
    assert grammar_en.verb_group(cook, they, "present") == ["cook"]
    assert grammar_en.verb_group(cook, i, "present") == ["cook"]
    assert grammar_en.verb_group(cook, he, "perfect") == ["has", "cooked"]
    assert grammar_en.verb_group(cook, they, "progressive") == ["are", "cooking"]
    assert grammar_en.verb_group(cook, i, "progressive") == ["am", "cooking"]
    assert grammar_en.be(i, "past") == "was" and grammar_en.be(they, "past") == "were"


# ---------------------------------------------------------------- grammars
def test_english_grammar_is_varied_and_consistent():
    rng, lexicon = random.Random(0), grammar_en.lexicon()
    assert len(lexicon) >= 1000
    sentences = [grammar_en.generate(rng) for _ in range(3000)]
    words = [s.text.split() for s in sentences]
    assert all(3 <= len(w) <= 25 for w in words)
    used = {w for ws in words for w in ws}
    assert used <= lexicon, sorted(used - lexicon)[:10]
    assert len(used) >= 1000  # a large part of the vocabulary really occurs
    for s in sentences[:300]:  # spoken form says exactly the transcript's words
        spoken = s.spoken.translate(str.maketrans("", "", ",.?")).upper().split()
        assert spoken == s.text.split()
        assert set(s.text) <= set(string.ascii_uppercase + " ")
    assert sum(s.spoken.endswith("?") for s in sentences) > 200  # questions
    assert any(" WHO " in s.text or " THAT " in s.text for s in sentences)  # relative clauses
    assert any(" HUNDRED " in s.text for s in sentences)  # numbers


def test_mandarin_grammar_characters_are_pronounced():
    chars = grammar_zh.charset()
    assert len(chars) >= 500
    ok, dropped = pronounceable(chars)
    assert len(ok) >= 500 and not dropped
    rng = random.Random(0)
    sentences = [grammar_zh.generate(rng, ok) for _ in range(2000)]
    assert all(4 <= len(s.text) <= 36 for s in sentences)
    used = {c for s in sentences for c in s.text}
    assert used <= chars and len(used) >= 500
    assert all(s.spoken.replace("，", "").rstrip("。？") == s.text for s in sentences)
    assert any("的那" in s.text for s in sentences) and any(s.text.endswith("吗") for s in sentences)


def test_unknown_characters_are_dropped():
    ok, dropped = pronounceable({"你", "好", "\u9fff"})  # U+9FFF: no reading in espeak's cmn dictionary
    assert ok == {"你", "好"} and dropped == ["\u9fff"]


# ---------------------------------------------------------------- espeak and augmentation
def test_espeak_synth_and_isolation():
    engine = Espeak.get()
    text = "The weather is cold."
    fresh = engine.synth_isolated(text, "en-us+m3", 160, 40, 50)
    assert fresh.dtype == np.int16 and len(fresh) > 0.5 * engine.sample_rate
    engine.synth_isolated("Something else entirely, and longer.", "en+f2", 200, 70, 30)
    assert np.array_equal(fresh, engine.synth_isolated(text, "en-us+m3", 160, 40, 50))
    with pytest.raises(EspeakError, match="no voice"):
        engine.synth("hello", "xx-nonexistent")


def test_voices_held_out():
    """espeak's dev/test variants are never heard in training (the other engines: tests/test_engines.py)."""
    for lang, splits in VOICES.items():
        assert len(splits["train"]) + len(splits["dev"]) + len(splits["test"]) >= 12
        variants = {s: {v.split("+")[1] for v in splits[s] if "+" in v} for s in splits}
        assert not variants["test"] & variants["train"], lang
        assert not variants["dev"] & variants["train"], lang
        assert not set(splits["dev"]) & set(splits["test"]), lang


def test_resample_matches_torchaudio():
    import torch
    import torchaudio.functional as AF

    t = np.arange(22050) / 22050
    x = (np.sin(2 * np.pi * 440 * t) * np.hanning(len(t))).astype(np.float32)
    ours = augment.resample(x, 22050, 16000)
    ref = AF.resample(torch.from_numpy(x), 22050, 16000).numpy()
    assert ours.shape == ref.shape == (16000,)
    assert np.max(np.abs(ours - ref)) < 2e-3


def test_noise_snr_and_colours():
    rng = np.random.default_rng(0)
    speech = np.sin(np.linspace(0, 400, 16000)).astype(np.float32)
    for noise in (augment.white_noise(16000, rng), augment.pink_noise(16000, rng),
                  augment.babble_noise(16000, [speech[::-1].copy(), speech * 0.5], rng)):
        mixed = augment.add_noise(speech, noise, 10.0)
        snr = 10 * np.log10(np.sum(speech**2) / np.sum((mixed - speech) ** 2))
        assert abs(snr - 10.0) < 0.01
    spec = np.abs(np.fft.rfft(augment.pink_noise(1 << 16, rng))) ** 2
    assert spec[10:100].mean() > 20 * spec[-5000:].mean()  # power falls with frequency


def test_reverberation():
    rir = augment.synthetic_rir(16000, rt60=0.4, drr_db=6.0, rng=np.random.default_rng(0))
    assert rir[0] == 1.0 and len(rir) == 6400
    assert abs(10 * np.log10(1.0 / np.sum(rir[1:] ** 2)) - 6.0) < 1e-3
    late, early = np.sum(rir[4800:] ** 2), np.sum(rir[1:1600] ** 2)
    assert late < early / 100  # exponential decay
    impulse = np.zeros(8000, np.float32)
    impulse[100] = 1.0
    out = augment.reverberate(impulse, rir)
    assert out.shape == impulse.shape and np.allclose(out[100:200], rir[:100], atol=1e-5)


# ---------------------------------------------------------------- whole corpora
def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "info.json"}


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    out = tmp_path_factory.mktemp("mini-en")
    return out, synthesize_corpus(out, "en", seed=3, n_train=10, n_dev=3, n_test=3, workers=2)


def test_corpus_layout_and_info(tiny_en):
    out, info = tiny_en
    assert json.loads((out / "info.json").read_text()) == info
    assert info["language"] == "en" and info["seed"] == 3
    sizes = {s: info["splits"][s]["utterances"] for s in ("train", "dev", "test")}
    assert sizes == {"train": 10, "dev": 3, "test": 3}
    assert not set(info["splits"]["test"]["voices"]) & set(info["splits"]["train"]["voices_planned"])
    texts = []
    for split in ("train", "dev", "test"):
        lines = (out / f"{split}.jsonl").read_text().splitlines()
        for rec in map(json.loads, lines):
            assert {"id", "path", "duration", "text", "speaker", "voice"} <= set(rec)
            audio = sf.info(str(out / rec["path"]))
            assert audio.samplerate == 16000 and audio.channels == 1
            assert abs(audio.frames / 16000 - rec["duration"]) < 1e-3
            texts.append(rec["text"])
    assert len(set(texts)) == len(texts)  # no sentence shared between splits


def test_clean_and_other_sets(tiny_en):
    """dev/test are clean like LibriSpeech dev-clean/test-clean; dev-other/test-other are degraded."""
    out, info = tiny_en
    assert set(info["splits"]) == {"train", "dev", "test", "dev-other", "test-other", "dev-unseen", "test-unseen"}
    for split in ("dev", "test", "dev-other", "test-other"):
        recs = [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert len(recs) == 3
        degraded = sum(r["condition"] != "clean" for r in recs)
        assert degraded == 0 if "other" not in split else degraded >= 2  # other: P(clean) = 0.1 * 0.6
        group = "dev" if split.startswith("dev") else "test"
        assert {r["voice"] for r in recs} <= set(info["splits"][group]["voices_planned"])
    assert info["splits"]["test-other"]["acoustics"]["p_noise"] >= 0.9
    assert info["splits"]["train"]["acoustics"]["p_noise"] <= 0.3


def test_same_seed_same_bytes_and_skip_rebuild(tiny_en, tmp_path, capsys):
    out, info = tiny_en
    again = synthesize_corpus(tmp_path / "again", "en", seed=3, n_train=10, n_dev=3, n_test=3, workers=1)
    assert _hashes(tmp_path / "again") == _hashes(out)
    assert again["splits"] == info["splits"]
    stamp = (out / "train.jsonl").stat().st_mtime_ns
    synthesize_corpus(out, "en", seed=3, n_train=10, n_dev=3, n_test=3, workers=2)
    assert "not rebuilt" in capsys.readouterr().out
    assert (out / "train.jsonl").stat().st_mtime_ns == stamp
    other = synthesize_corpus(tmp_path / "other", "en", seed=4, n_train=2, n_dev=1, n_test=1, workers=1)
    assert other["splits"]["train"]["utterances"] == 2
    first = json.loads((tmp_path / "other" / "train.jsonl").read_text().splitlines()[0])
    assert first["text"] != json.loads((out / "train.jsonl").read_text().splitlines()[0])["text"]


def test_tiny_mandarin_corpus(tmp_path):
    info = synthesize_corpus(tmp_path, "zh", seed=0, n_train=4, n_dev=2, n_test=2, workers=1)
    assert info["unit"] == "char" and info["dropped_characters"] == []
    allowed = grammar_zh.charset()
    for rec in map(json.loads, (tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()):
        assert set(rec["text"]) <= allowed and rec["voice"].startswith("cmn")
        assert rec["duration"] > 0.5


def test_cli_synth(tmp_path, capsys):
    from kdlab.cli import main

    sizes = ["--train", "2", "--dev", "1", "--test", "1"]
    assert main(["data", "synth", "--lang", "en", *sizes, "--out", str(tmp_path)]) == 0
    assert "real time" in capsys.readouterr().out
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["params"]["n_train"] == 2 and len((tmp_path / "train.jsonl").read_text().splitlines()) == 2


def test_bad_corpus_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        synthesize_corpus(tmp_path, "fr", n_train=1)
    with pytest.raises(ValueError, match="must be positive"):
        synthesize_corpus(tmp_path, "en", train_hours=0.0)
