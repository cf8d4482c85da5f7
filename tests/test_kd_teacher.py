"""Teacher outputs: N-best cache (write/read/identity), hypothesis batches, teacher-forcing input."""

import hashlib
import json
import math

import pytest
import torch

from kdlab.data.tokenizer import CharTokenizer
from kdlab.kd.teacher import (
    NBestCache,
    load_nbest_cache,
    make_nbest_batch,
    sha256_dir,
    sha256_file,
    tokenizer_sha256,
)
from kdlab.tokens import IGNORE_ID


def small_cache() -> NBestCache:
    cache = NBestCache("a" * 64, "b" * 64, beam=4, nbest=3, ctc_weight=0.3)
    cache.entries = {"utt-1": [([5, 6, 7], -1.5), ([5, 6], -2.25)], "utt-2": [([], -0.5)],
                     "u3 中文": [([8], -3.0), ([9], -4.0), ([8, 9], -5.0)]}
    return cache


def test_cache_round_trip(tmp_path):
    cache = small_cache()
    path = cache.save(tmp_path / "sub" / "nbest.jsonl")
    back = load_nbest_cache(path)
    assert back == cache
    assert back.lookup("utt-2") == [([], -0.5)]
    assert not list((tmp_path / "sub").glob(".*.tmp"))  # atomic write leaves no temp file
    head = json.loads(path.read_text().splitlines()[0])
    assert head["teacher_sha256"] == "a" * 64 and head["nbest"] == 3


def test_cache_identity_mismatch_and_missing_id(tmp_path):
    cache = small_cache()
    assert cache.mismatches(cache.header()) == []
    bad = cache.mismatches({**cache.header(), "teacher_sha256": "c" * 64, "beam": 10})
    assert len(bad) == 2 and "teacher_sha256" in bad[0] and "beam" in bad[1]
    with pytest.raises(KeyError, match="utt-9"):
        cache.lookup("utt-9")


def test_cache_records_the_end_rule_and_older_caches_read_as_exact(tmp_path):
    path = small_cache().save(tmp_path / "nbest.jsonl")
    assert json.loads(path.read_text().splitlines()[0])["end_rule"] == "beam"
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    del head["end_rule"]  # written before the end rule was recorded: searched with the exact rule
    path.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    old = load_nbest_cache(path)
    assert old.end_rule == "exact"
    assert old.mismatches({"end_rule": "beam"}) == ["end_rule: cache has 'exact', expected 'beam'"]


def test_cache_rejects_malformed_files(tmp_path):
    path = small_cache().save(tmp_path / "nbest.jsonl")
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + ['{"id": "x", "hyps": [[[1, 2]]]}']) + "\n")
    with pytest.raises(ValueError, match=r"nbest.jsonl:3: bad N-best entry"):
        load_nbest_cache(path)
    path.write_text("\n".join(lines[:1] + ['{"id": "x", "hyps": []}']) + "\n")
    with pytest.raises(ValueError, match="'x' has an empty N-best list"):
        load_nbest_cache(path)
    (tmp_path / "other.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(ValueError, match="not a kdlab N-best cache"):
        load_nbest_cache(tmp_path / "other.jsonl")


def test_identities_change_with_content(tmp_path):
    f = tmp_path / "teacher.pt"
    f.write_bytes(b"weights-1")
    h1 = sha256_file(f)
    assert h1 == hashlib.sha256(b"weights-1").hexdigest()
    f.write_bytes(b"weights-2")
    assert sha256_file(f) != h1
    tok_a = CharTokenizer.train(["你好世界", "你们好"], lang="zh")
    tok_b = CharTokenizer.train(["你好世界", "我们好"], lang="zh")
    assert tokenizer_sha256(tok_a) == tokenizer_sha256(tok_a)
    assert tokenizer_sha256(tok_a) != tokenizer_sha256(tok_b)
    tok_a.save(tmp_path / "tok")
    assert sha256_dir(tmp_path / "tok") == tokenizer_sha256(tok_a)


def test_make_nbest_batch_flattens_and_pads():
    nb = make_nbest_batch(small_cache(), ["u3 中文", "utt-1", "utt-2"], nbest=2)
    assert nb.size == 5
    assert nb.utt.tolist() == [0, 0, 1, 1, 2]
    assert nb.lens.tolist() == [1, 1, 3, 2, 0]
    assert nb.tokens.shape == (5, 3)
    assert nb.tokens[2].tolist() == [5, 6, 7] and nb.tokens[3].tolist() == [5, 6, IGNORE_ID]
    assert nb.tokens[4].tolist() == [IGNORE_ID] * 3
    assert nb.scores.tolist() == [-3.0, -4.0, -1.5, -2.25, -0.5]
    with pytest.raises(KeyError, match="nope"):
        make_nbest_batch(small_cache(), ["utt-1", "nope"])


# ----------------------------------------------------------------------------- teacher search and caching


def tiny_teacher(vocab: int = 12):
    from kdlab.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig(d_model=16, heads=2, ffn_dim=32, enc_blocks=1, dec_blocks=1, cnn_kernel=3,
                      dropout=0.0, pos_dropout=0.0)
    return build_model(cfg, vocab, "ar").eval()


def feature_batches():
    gen = torch.Generator().manual_seed(1)
    first = {"ids": ["a", "b"], "feats": torch.randn(2, 40, 80, generator=gen),
             "feat_lens": torch.tensor([40, 29])}
    second = {"ids": ["c"], "feats": torch.randn(1, 33, 80, generator=gen), "feat_lens": torch.tensor([33])}
    return [first, second]


def test_compute_nbest_with_the_joint_beam_search():
    from kdlab.kd.teacher import compute_nbest
    from kdlab.tokens import NUM_SPECIAL, UNK

    entries = compute_nbest(tiny_teacher(), feature_batches(), beam=4, nbest=3, ctc_weight=0.3)
    assert list(entries) == ["a", "b", "c"]
    for hyps in entries.values():
        assert 1 <= len(hyps) <= 3
        scores = [s for _, s in hyps]
        assert scores == sorted(scores, reverse=True) and all(math.isfinite(s) for s in scores)
        assert all(t == UNK or t >= NUM_SPECIAL for toks, _ in hyps for t in toks)
        assert len({tuple(toks) for toks, _ in hyps}) == len(hyps)  # distinct hypotheses


def test_build_or_load_nbest_reuses_checks_and_recomputes(tmp_path):
    from kdlab.kd.teacher import NBestCacheMismatch, build_or_load_nbest

    teacher, calls, logs = tiny_teacher(), [], []

    def batches():
        calls.append(1)
        return feature_batches()

    expected = NBestCache("a" * 64, "b" * 64, beam=3, nbest=2, ctc_weight=0.3)
    path = tmp_path / "nbest.jsonl"
    ids = ["a", "b", "c"]
    first = build_or_load_nbest(path, expected, ids, batches, teacher, log=logs.append)
    assert path.is_file() and len(calls) == 1 and set(first.entries) == set(ids)
    again = build_or_load_nbest(path, expected, ids, batches, teacher, log=logs.append)
    assert len(calls) == 1 and again == first and "reusing" in logs[-1]
    other_teacher = NBestCache("c" * 64, "b" * 64, beam=3, nbest=2, ctc_weight=0.3)
    with pytest.raises(NBestCacheMismatch, match="teacher_sha256"):
        build_or_load_nbest(path, other_teacher, ids, batches, teacher, log=logs.append)
    with pytest.raises(NBestCacheMismatch, match="not cached.*'d'"):
        build_or_load_nbest(path, expected, ids + ["d"], batches, teacher, log=logs.append)
    redone = build_or_load_nbest(path, other_teacher, ids, batches, teacher, on_mismatch="recompute",
                                 log=logs.append)
    assert len(calls) == 2 and redone.teacher_sha256 == "c" * 64
    assert load_nbest_cache(path).teacher_sha256 == "c" * 64
