"""Batching by total frames, collation, and the dataset on the tiny synthesized corpora."""

import random

import pytest
import soundfile as sf
import torch

from kdlab.data.audio import AudioError
from kdlab.data.dataset import ASRDataset, FrameBatchSampler, collate, fit_cmvn, make_loader, set_epoch
from kdlab.data.features import SpecAugConfig, num_frames
from kdlab.data.manifest import read_manifest
from kdlab.data.tokenizer import BPETokenizer, CharTokenizer
from kdlab.tokens import IGNORE_ID, UNK

BATCH_KEYS = {"ids", "texts", "feats", "feat_lens", "tokens", "token_lens"}


# ---------------------------------------------------------------- sampler and collate (no audio)

def test_sampler_hand_case():
    s = FrameBatchSampler([5, 10, 12, 30, 31, 70], max_frames=60, shuffle=False)
    # 3 × 12 = 36 fits; 4 × 30 > 60; 2 × 31 > 60; 70 alone exceeds the budget but still gets a batch
    assert list(s) == [[0, 1, 2], [3], [4], [5]]
    assert len(s) == 4


def test_sampler_budget_determinism_and_coverage():
    rng = random.Random(0)
    lengths = [rng.randint(50, 400) for _ in range(200)]
    s = FrameBatchSampler(lengths, max_frames=2000, shuffle=True, seed=5)
    first = list(s)
    assert first == list(FrameBatchSampler(lengths, max_frames=2000, shuffle=True, seed=5))
    assert sorted(i for b in first for i in b) == list(range(200))
    assert all(len(b) * max(lengths[i] for i in b) <= 2000 for b in first)
    s.set_epoch(1)
    assert list(s) != first and sorted(i for b in s for i in b) == list(range(200))


def test_sampler_ddp_shards():
    lengths = [100] * 7  # max_frames 200 → 2 per batch → 4 batches (the last one single)
    shards = [list(FrameBatchSampler(lengths, 200, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert [len(s) for s in shards] == [2, 2, 2]  # padded from 4 to 6 batches by repetition
    covered = {i for s in shards for b in s for i in b}
    assert covered == set(range(7))
    cut = [list(FrameBatchSampler(lengths, 200, seed=1, rank=r, world_size=3, drop_last=True))
           for r in range(3)]
    assert [len(s) for s in cut] == [1, 1, 1]
    flat = [i for s in cut for b in s for i in b]
    assert len(flat) == len(set(flat))  # no repeats when dropping
    with pytest.raises(ValueError, match="rank 3"):
        FrameBatchSampler(lengths, 200, rank=3, world_size=3)


def test_collate_pads_with_zero_and_ignore_id():
    items = [
        {"id": "a", "text": "x", "feats": torch.ones(3, 80), "tokens": torch.tensor([5, 6])},
        {"id": "b", "text": "y", "feats": torch.ones(5, 80), "tokens": torch.tensor([7, 8, 9])},
    ]
    batch = collate(items)
    assert set(batch) == BATCH_KEYS
    assert batch["feats"].shape == (2, 5, 80) and batch["feats"].dtype == torch.float32
    assert batch["feat_lens"].tolist() == [3, 5] and batch["feat_lens"].dtype == torch.int64
    assert batch["feats"][0, 3:].abs().sum() == 0
    assert batch["tokens"].tolist() == [[5, 6, IGNORE_ID], [7, 8, 9]]
    assert batch["token_lens"].tolist() == [2, 3]
    items[1]["feats"] = torch.ones(5, 40)
    with pytest.raises(ValueError, match="b: 40-dim"):
        collate(items)


# ---------------------------------------------------------------- on the embedded corpora

@pytest.fixture(scope="module")
def en_setup(tiny_corpus_en, tmp_path_factory):
    train = read_manifest(tiny_corpus_en / "train.jsonl")
    tok = BPETokenizer.train([r["text"] for r in train], vocab_size=200)
    cache = tmp_path_factory.mktemp("feat-cache")
    cmvn = fit_cmvn(train, cache_dir=cache)
    return tiny_corpus_en, tok, cmvn, cache


def test_cmvn_on_training_split(en_setup):
    corpus, tok, cmvn, cache = en_setup
    ds = ASRDataset(corpus / "train.jsonl", tok, cmvn, cache_dir=cache)
    frames = torch.cat([ds[i]["feats"] for i in range(len(ds))])  # (sum T, 80)
    assert frames.shape[1] == 80 and cmvn.count == frames.shape[0]
    assert frames.mean(0).abs().max() < 1e-3
    assert (frames.std(0) - 1).abs().max() < 1e-2


def test_eval_items_and_lengths(en_setup):
    corpus, tok, cmvn, cache = en_setup
    ds = ASRDataset(corpus / "dev.jsonl", tok, cmvn)
    recs = read_manifest(corpus / "dev.jsonl")
    for i, (item, est) in enumerate(zip(ds, ds.frame_lengths(), strict=True)):
        assert item["id"] == recs[i]["id"]
        n = sf.info(recs[i]["path"]).frames
        assert item["feats"].shape == (num_frames(n), 80) and abs(est - num_frames(n)) <= 1
        assert tok.decode(item["tokens"].tolist()) == item["text"] and item["tokens"].numel() > 0
    uncached = ASRDataset(corpus / "train.jsonl", tok, cmvn)[0]["feats"]
    cached = ASRDataset(corpus / "train.jsonl", tok, cmvn, cache_dir=cache)[0]["feats"]
    assert torch.allclose(uncached, cached)


def test_eval_loader_batches(en_setup):
    corpus, tok, cmvn, _ = en_setup
    loader = make_loader(corpus / "test.jsonl", tok, cmvn, max_frames=1500)
    seen = []
    for batch in loader:
        assert set(batch) == BATCH_KEYS
        b, t, d = batch["feats"].shape
        assert d == 80 and t == int(batch["feat_lens"].max())
        assert b == 1 or b * t <= 1500 + b  # estimates may differ from the real length by one frame
        assert (batch["tokens"] == IGNORE_ID).sum() == batch["tokens"].numel() - batch["token_lens"].sum()
        seen += batch["ids"]
    assert sorted(seen) == sorted(r["id"] for r in read_manifest(corpus / "test.jsonl"))


def test_train_augmentation_is_seeded(en_setup, tmp_path):
    corpus, tok, cmvn, _ = en_setup
    kw = dict(cache_dir=tmp_path, train=True, specaug=SpecAugConfig(), speed_perturb=True, seed=3)
    a = ASRDataset(corpus / "train.jsonl", tok, cmvn, **kw)
    b = ASRDataset(corpus / "train.jsonl", tok, cmvn, **kw)
    plain = ASRDataset(corpus / "train.jsonl", tok, cmvn)
    items = [a[i] for i in range(len(a))]
    assert torch.equal(items[2]["feats"], b[2]["feats"])
    assert {it["speed"] for it in items} == {0.9, 1.0, 1.1}
    slow = next(i for i, it in enumerate(items) if it["speed"] == 0.9)
    t_plain, t_slow = plain[slow]["feats"].shape[0], items[slow]["feats"].shape[0]
    assert abs(t_slow - t_plain / 0.9) <= 2
    a.set_epoch(1)
    assert any(not torch.equal(a[i]["feats"], items[i]["feats"]) for i in range(4))
    cached = {p.name for p in tmp_path.rglob("*.pt")}
    assert any("__sp0.9__" in n for n in cached) and any("__sp1.1__" in n for n in cached)  # + content key


def test_train_loader_epochs(en_setup):
    corpus, tok, cmvn, cache = en_setup
    loader = make_loader(corpus / "train.jsonl", tok, cmvn, max_frames=3000, train=True, cache_dir=cache,
                         specaug=SpecAugConfig(), seed=0)
    epoch0 = [batch["ids"] for batch in loader]
    set_epoch(loader, 1)
    epoch1 = [batch["ids"] for batch in loader]
    assert sorted(sum(epoch0, [])) == sorted(sum(epoch1, [])) and len(sum(epoch0, [])) == 24
    assert epoch0 != epoch1


def test_zh_corpus_with_char_tokenizer(tiny_corpus_zh):
    train = read_manifest(tiny_corpus_zh / "train.jsonl")
    tok = CharTokenizer.train([r["text"] for r in train])
    ds = ASRDataset(train, tok, None)
    for i in range(3):
        item = ds[i]
        assert UNK not in item["tokens"].tolist() and tok.decode(item["tokens"].tolist()) == item["text"]
        assert len(item["text"]) == item["tokens"].numel()


def test_bad_items_are_named(en_setup, tmp_path):
    _, tok, cmvn, _ = en_setup
    short = tmp_path / "short.wav"
    sf.write(short, [0.0] * 100, 16000)
    recs = [{"id": "utt-short", "path": str(short), "duration": 100 / 16000, "text": "hello"},
            {"id": "utt-missing", "path": str(tmp_path / "nope.wav"), "duration": 1.0, "text": "hello"}]
    ds = ASRDataset(recs, tok, cmvn)
    with pytest.raises(ValueError, match="utt-short.*too short"):
        ds[0]
    with pytest.raises(AudioError, match="utterance utt-missing: .*nope.wav: audio file not found"):
        ds[1]
