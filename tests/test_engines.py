"""mini-en's synthesizers: flite and festival beside espeak-ng, held-out voices, the --engines choice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kdlab.cli import main as kdlab_main
from kdlab.data.synth import engines, synthesize_corpus, voices
from kdlab.data.synth.corpus import SPLITS
from kdlab.errors import UserError

pytestmark = pytest.mark.skipif(bool(engines.missing(engines.ENGINES)),
                                reason=f"needs the Debian packages: {engines.INSTALL_ALL}")


def _f0(wave: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch (Hz) of the loud 40 ms frames."""
    x, n = wave.astype(np.float64) / 32768.0, int(0.04 * sr)
    found = []
    for start in range(0, len(x) - n, n // 2):
        w = x[start:start + n]
        if np.sqrt((w ** 2).mean()) < 0.02:
            continue
        ac = np.correlate(w, w, "full")[n - 1:]
        lo, hi = sr // 400, sr // 60
        found.append(sr / (lo + np.argmax(ac[lo:hi])))
    return float(np.median(found))


@pytest.mark.parametrize("voice", ["flite:awb", "festival:kal_diphone"])
def test_external_voices_are_deterministic_and_follow_rate_and_pitch(voice):
    text = "Every rich investor in the branch raised our checks."
    a, sr = engines.synth_external(text, voice, rate=175, pitch=50)
    b, _ = engines.synth_external(text, voice, rate=175, pitch=50)
    assert sr == 16000 and a.dtype == np.int16 and np.array_equal(a, b)  # same controls, same bytes
    slow, _ = engines.synth_external(text, voice, rate=135, pitch=50)
    assert len(slow) > 1.2 * len(a)  # 175 / 135 = 1.30 × the duration
    high, _ = engines.synth_external(text, voice, rate=175, pitch=90)
    assert _f0(high, sr) > 1.15 * _f0(a, sr)  # pitch 90: +0.27 octave


def test_voice_names_and_engine_choice():
    assert engines.engine_of("en-us+m3") == "espeak" and engines.engine_of("flite:slt") == "flite"
    with pytest.raises(ValueError, match="unknown synthesizer"):
        engines.engine_of("mbrola:us1")
    assert engines.parse_engines("festival, espeak") == ("espeak", "festival")
    with pytest.raises(UserError, match="unknown engine pico"):
        engines.parse_engines("espeak,pico")


def test_held_out_speakers():
    train = set(voices.voices_for("en", "train"))
    dev, test = set(voices.voices_for("en", "dev-unseen")), set(voices.voices_for("en", "test-unseen"))
    assert not (train & dev) and not (train & test) and not (dev & test)
    assert {"flite:slt", "festival:cmu_us_slt_arctic_hts"} <= test  # the speaker SLT: test-unseen only
    for group in (dev, test):  # every engine has a held-out voice in each unseen set
        assert set(voices.by_engine(tuple(group))) == set(engines.ENGINES)
    assert set(voices.by_engine(voices.voices_for("en", "train"))) == set(engines.ENGINES)
    espeak_only = voices.voices_for("en", "train", ("espeak",))
    assert len(espeak_only) == 63 and all(":" not in v for v in espeak_only)


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    out = tmp_path_factory.mktemp("multi") / "corpus"
    return out, synthesize_corpus(out, "en", seed=5, n_train=24, n_dev=6, n_test=6, workers=2)


def _records(out, split):
    return [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]


def test_multi_engine_corpus(multi):
    out, info = multi
    assert set(info["engines"]) == set(engines.ENGINES) and "flite-2" in info["engines"]["flite"]
    assert list(info["splits"]) == list(SPLITS["en"]) and "test-unseen" in info["splits"]
    train = _records(out, "train")
    assert {engines.engine_of(r["voice"]) for r in train} == set(engines.ENGINES)
    assert info["splits"]["train"]["seconds_by_engine"]["flite"] > 0
    for split in ("dev-unseen", "test-unseen"):
        rs = _records(out, split)
        assert len(rs) == 6 and all(r["condition"] == "clean" for r in rs)
        assert not {r["voice"] for r in rs} & set(voices.voices_for("en", "train"))
    for split in ("dev", "test", "dev-other", "test-other"):  # the espeak sets stay espeak's
        assert all(engines.engine_of(r["voice"]) == "espeak" for r in _records(out, split))


def test_espeak_only_corpus_and_bad_engines(tmp_path, capsys):
    out = tmp_path / "es"
    assert kdlab_main(["data", "synth", "--lang", "en", "--engines", "espeak", "--train", "6", "--dev", "2",
                       "--test", "2", "--workers", "1", "--out", str(out)]) == 0
    info = json.loads((out / "info.json").read_text())
    assert list(info["engines"]) == ["espeak"] and info["params"]["engines"] == ["espeak"]
    assert all(":" not in r["voice"] for s in SPLITS["en"] for r in _records(out, s))
    capsys.readouterr()
    assert kdlab_main(["data", "synth", "--lang", "en", "--engines", "espeak,pico", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown engine pico" in err
    with pytest.raises(UserError, match="espeak-ng only"):
        synthesize_corpus(tmp_path / "zh", "zh", n_train=1, engines=("espeak", "flite"))


def test_missing_synthesizer_names_the_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(engines.shutil, "which", lambda program: None)
    assert kdlab_main(["data", "synth", "--lang", "en", "--train", "2", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "apt-get install -y flite festival festvox-kallpc16k" in err and "--engines espeak" in err
    assert not (tmp_path / "c").exists()  # refused before anything was written


def test_check_set_per_engine(multi, tmp_path):
    from kdlab.pretrained.check import write_check_set

    out, _ = multi
    shipped = write_check_set(out / "test-unseen.jsonl", 1, "mini-en", "test-unseen", root=tmp_path, per_engine=True)
    recs = [json.loads(line) for line in shipped.read_text().splitlines()]
    assert sorted(engines.engine_of(r["voice"]) for r in recs) == sorted(engines.ENGINES)
    assert all((shipped.parent / r["path"]).is_file() for r in recs)


def test_decode_reports_each_engine(multi):
    from kdlab.evaluate.breakdown import engine_groups, rates_by_group

    out, _ = multi
    recs = _records(out, "test-unseen")
    groups = engine_groups(recs)
    assert set(groups.values()) == set(engines.ENGINES) and engine_groups(_records(out, "test")) is None
    ids, refs = [r["id"] for r in recs], [r["text"] for r in recs]
    hyps = [t if groups[i] == "espeak" else "" for i, t in zip(ids, refs, strict=True)]
    rates = rates_by_group(ids, refs, hyps, "word", groups)
    assert rates["espeak"] == 0.0 and rates["flite"] == rates["festival"] == 100.0
