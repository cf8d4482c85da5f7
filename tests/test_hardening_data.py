"""Issue #31 hardening of the data side: a content-keyed feature cache, long audio in decoding, a negative
``--limit``, Unicode-aware English normalisation and empty references in scoring."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from kdlab.cli import main as cli
from kdlab.config import ExperimentConfig, save_config
from kdlab.data.dataset import UtteranceFeatures, fit_cmvn
from kdlab.data.features import FbankConfig, FeatureCache, GlobalCMVN, content_key
from kdlab.data.manifest import LimitError, first_records, validate, write_manifest
from kdlab.data.tokenizer import UNK, CharTokenizer, normalize_text, train_tokenizer
from kdlab.errors import UserError
from kdlab.evaluate.metrics import EmptyReferenceError, error_rate
from kdlab.models import build_model
from kdlab.models.config import ModelConfig
from kdlab.search.decode import LongAudioError, chunked_ctc_log_probs, decode

TINY = {"d_model": 32, "heads": 2, "ffn_dim": 64, "enc_blocks": 1, "dec_blocks": 1, "cnn_kernel": 3}


def _corpus(folder: Path, seed: int, seconds: float = 0.6) -> list[dict]:
    """Two noise utterances ``u0``, ``u1`` (same ids in every corpus, different audio per seed)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for i in range(2):
        path = folder / f"u{i}.wav"
        sf.write(path, (rng.standard_normal(int(16000 * seconds)) * (0.05 + 0.2 * seed)).astype("float32"), 16000)
        records.append({"id": f"u{i}", "path": str(path), "duration": seconds, "text": "a", "speaker": "s"})
    return records


def _age(records: list[dict], ns: int = 10**9) -> None:
    """Give the audio files a modification time long before any cache entry."""
    for rec in records:
        os.utime(rec["path"], ns=(ns, ns))


# ---- defect 5: feature cache keyed by content and feature config ----

def test_cache_second_corpus_with_same_ids_in_another_folder(tmp_path: Path):
    cache = tmp_path / "cache"
    one = _corpus(tmp_path / "c1", seed=0)
    fit_cmvn(one, cache_dir=cache)  # fills the cache with corpus 1
    two = _corpus(tmp_path / "c2", seed=1)
    _age(two)  # older than corpus 1's cache entries
    cached, fresh = UtteranceFeatures(cache), UtteranceFeatures(None)
    for rec in two:
        assert torch.equal(cached(rec), fresh(rec)), rec["id"]
    assert torch.allclose(fit_cmvn(two, cache_dir=cache).mean, fit_cmvn(two).mean)


def test_cache_corpus_rebuilt_in_place_with_older_file_times(tmp_path: Path):
    cache = tmp_path / "cache"
    one = _corpus(tmp_path / "c", seed=0)
    before = fit_cmvn(one, cache_dir=cache)
    two = _corpus(tmp_path / "c", seed=1)  # same paths, same sizes, other samples
    _age(two)
    after = fit_cmvn(two, cache_dir=cache)
    assert not torch.allclose(after.mean, before.mean)
    assert torch.allclose(after.mean, fit_cmvn(two).mean)


def test_cache_key_depends_on_content_and_feature_config(tmp_path: Path):
    rec = _corpus(tmp_path / "c", seed=0)[0]
    key = content_key(rec["path"], FbankConfig())
    assert content_key(rec["path"], FbankConfig(num_mel_bins=40)) != key
    os.utime(rec["path"], ns=(5 * 10**18, 5 * 10**18))  # touched only: same content, same key
    assert content_key(rec["path"], FbankConfig()) == key
    cache = FeatureCache(tmp_path / "cache")
    assert cache.path("u0", 1.0, rec["path"]) != cache.path("u0", 1.0, tmp_path / "c" / "u1.wav")


# ---- defect 6: long audio ----

def _tiny(kind: str, vocab: int = 12) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(**TINY), vocab, kind).eval()


def _batch(seconds: float, utt: str = "long-utt") -> dict:
    frames = int(seconds * 100)
    torch.manual_seed(1)
    return {"ids": [utt], "feats": torch.randn(1, frames, 80), "feat_lens": torch.tensor([frames])}


@pytest.mark.parametrize("kind,method", [("ar", "attention_beam10"), ("maskctc", "maskctc_beam10"),
                                         ("maskctc", "maskctc_greedy")])
def test_long_utterance_is_one_line_error_for_non_ctc_methods(kind: str, method: str):
    with pytest.raises(LongAudioError, match=r"utterance long-utt: 61\.0 s of audio is longer than the 60 s"):
        decode(_tiny(kind), _batch(61.0), [method])
    assert issubclass(LongAudioError, UserError)


def test_ctc_methods_chunk_long_audio_with_bounded_windows():
    model = _tiny("ctc")
    seen: list[int] = []
    encode = model.encode

    def spy(feats: torch.Tensor, lens: torch.Tensor):
        seen.append(feats.size(1))
        return encode(feats, lens)

    model.encode = spy
    out = decode(model, _batch(130.0), ["ctc_greedy", "ctc_prefix_beam2"])
    assert len(seen) == 5 and max(seen) <= 3400 + 3  # 30 s kept + 2 x 2 s context per window
    assert set(out) == {"ctc_greedy", "ctc_prefix_beam2"}


def test_chunked_ctc_posteriors_line_up_with_a_whole_encoding():
    model = _tiny("ctc")
    feats = _batch(3.07)["feats"][0]  # (307, 80)
    with torch.inference_mode():
        enc, lens = model.encode(feats[None], torch.tensor([feats.size(0)]))
        whole = model.ctc_log_probs(enc)[0]
        chunked = chunked_ctc_log_probs(model, feats, chunk_s=0.4, context_s=100.0)  # full context
    assert chunked.shape == whole.shape == (int(lens), 12)
    assert torch.allclose(chunked, whole, atol=1e-4)


def test_decode_command_refuses_long_audio_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 61, dtype="float32") + 0.01, 16000)
    write_manifest(tmp_path / "test.jsonl", [{"id": "long", "path": "long.wav", "duration": 61.0,
                                             "text": "好", "speaker": "s"}])
    run = tmp_path / "ar"
    run.mkdir()
    cfg = ExperimentConfig(name="ar")
    cfg.data.corpus, cfg.data.lang = str(tmp_path), "zh"
    cfg.model.kind, cfg.model.preset, cfg.model.config = "ar", None, dict(TINY)
    save_config(cfg, run / "config.yaml")
    tok = CharTokenizer.train(["好"], lang="zh")
    tok.save(run / "tokenizer")
    GlobalCMVN(torch.zeros(80), torch.ones(80)).save(run / "cmvn.json")
    torch.save({"model": build_model(ModelConfig(**TINY), tok.vocab_size, "ar").state_dict()}, run / "epoch-1.pt")
    rc = cli(["decode", "--ckpt", str(run / "epoch-1.pt"), "--set", str(tmp_path / "test.jsonl"),
              "--methods", "attention_beam", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "utterance long: 61.0 s" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# ---- defect 9: negative --limit ----

def test_negative_limit_is_an_error_not_a_dropped_utterance():
    records = [{"id": f"u{i}"} for i in range(3)]
    with pytest.raises(LimitError, match="--limit -1: must be >= 0"):
        first_records(records, -1)
    assert first_records(records, None) == records and first_records(records, 2) == records[:2]
    assert first_records(records, 0) == []


# ---- defect 9: Unicode-aware English normalisation ----

@pytest.mark.parametrize("text,want", [
    ("ÉCOLE naïve", "ecole naive"),  # accents stripped, not dropped
    ("Ça coûte ﬁve", "ca coute five"),  # NFKD unfolds ligatures
    ("don’t STOP—now!", "don't stop now"),  # typographic apostrophe kept, dash is punctuation
    ("hello 😀 world", "hello 😀 world"),  # a symbol is kept (and is OOV), not turned into a space
    ("5 € + 3", "5 € + 3"),
    ("Straße", "straße"),  # a letter outside a-z is kept (OOV), not dropped
])
def test_english_normalisation_is_unicode_aware(text: str, want: str):
    assert normalize_text(text, "en") == want


@pytest.fixture(scope="module")
def ascii_bpe():
    texts = ["the cat sat on the mat", "a dog ran to the school", "naive people like ecole"] * 5
    return train_tokenizer(texts, "en", vocab_size=40)


@pytest.mark.parametrize("text,reason", [("the cat 😀", "oov"), ("the cat €", "oov"), ("straße", "oov"),
                                         ("?!", "empty_transcript"), ("ÉCOLE naïve", None)])
def test_symbols_and_foreign_letters_count_as_oov(tmp_path: Path, ascii_bpe, text: str, reason: str | None):
    sf.write(tmp_path / "a.wav", np.zeros(16000, dtype="float32") + 0.01, 16000)
    rec = {"id": "x", "path": str(tmp_path / "a.wav"), "duration": 1.0, "text": text, "speaker": "s"}
    kept, report = validate([rec], ascii_bpe.encode, UNK)
    assert report.counts() == ({reason: 1} if reason else {}) and len(kept) == (0 if reason else 1)


# ---- defect 9: empty reference in scoring ----

def test_empty_reference_is_a_counted_skip():
    stats = error_rate(["a b", "", "  "], ["a b", "x y", ""], "word")
    assert (stats.n_utts, stats.empty_refs, stats.n_ref, stats.errors) == (1, 2, 2, 0)
    assert stats.rate == 0.0
    assert error_rate(["", "好"], ["x", "好"], "char").empty_refs == 1


def test_empty_reference_strict_is_one_line_error():
    with pytest.raises(EmptyReferenceError, match="utterance u2: empty reference"):
        error_rate(["a", ""], ["a", "b"], "word", ids=["u1", "u2"], strict=True)
    assert issubclass(EmptyReferenceError, UserError)
