"""Alignment, CER/WER with S/I/D, RTF and the icefall-style result files."""

import random

import editdistance
import pytest

from kdlab.evaluate.metrics import ErrorStats, align, error_rate, rtf, stats_from_alignment, tokens_for_unit
from kdlab.evaluate.results import format_alignment, format_summary, write_results


def reference_counts(ref, hyp):
    """Independent DP over (cost, -sub) pairs: minimum edits, then the most substitutions among ties."""
    n, m = len(ref), len(hyp)
    # best[i][j] = (edits, subs, ins, dels) for ref[:i] -> hyp[:j]
    best = [[None] * (m + 1) for _ in range(n + 1)]
    best[0] = [(j, 0, j, 0) for j in range(m + 1)]
    for i in range(1, n + 1):
        best[i][0] = (i, 0, 0, i)
        for j in range(1, m + 1):
            e, s, ins, d = best[i - 1][j - 1]
            miss = ref[i - 1] != hyp[j - 1]
            cands = [(e + miss, s + miss, ins, d)]
            e, s, ins, d = best[i - 1][j]
            cands.append((e + 1, s, ins, d + 1))
            e, s, ins, d = best[i][j - 1]
            cands.append((e + 1, s, ins + 1, d))
            best[i][j] = min(cands, key=lambda c: (c[0], -c[1]))
    return best[n][m]


def test_align_hand_cases():
    assert align(list("abc"), list("abc")) == [("C", "a", "a"), ("C", "b", "b"), ("C", "c", "c")]
    assert align(list("abc"), list("axc")) == [("C", "a", "a"), ("S", "b", "x"), ("C", "c", "c")]
    assert align(list("abc"), list("ac")) == [("C", "a", "a"), ("D", "b", None), ("C", "c", "c")]
    assert align(list("ac"), list("abc")) == [("C", "a", "a"), ("I", None, "b"), ("C", "c", "c")]
    assert align([], ["x"]) == [("I", None, "x")]
    assert align(["x"], []) == [("D", "x", None)]
    assert align([], []) == []
    # ties: "ab" -> "ba" is 2 edits either as S+S or D+I; substitutions are preferred
    assert [op for op, _, _ in align(list("ab"), list("ba"))] == ["S", "S"]


def test_align_random_cross_check():
    rng = random.Random(0)
    for _ in range(300):
        ref = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 9))]
        ops = align(ref, hyp)
        assert [r for _, r, _ in ops if r is not None] == ref
        assert [h for _, _, h in ops if h is not None] == hyp
        st = stats_from_alignment(ops)
        e, s, i, d = reference_counts(ref, hyp)
        assert st.errors == e == editdistance.eval(ref, hyp)
        assert (st.sub, st.ins, st.dele) == (s, i, d)


def test_tokens_for_unit():
    assert tokens_for_unit("今天 天气", "char") == ["今", "天", "天", "气"]
    assert tokens_for_unit("  the cat  sat ", "word") == ["the", "cat", "sat"]
    with pytest.raises(ValueError, match="unit"):
        tokens_for_unit("x", "phone")


def test_error_rate_hand_computed():
    # CER: ref 6 chars; hyp has 1 substitution (气->器), 1 deletion (好), 1 insertion (啊)
    st = error_rate(["今天天气很好", "你好"], ["今天天器很啊", "你好"], unit="char")
    assert (st.n_ref, st.errors, st.n_utts, st.n_utts_err) == (8, 2, 2, 1)
    assert st.sub == 2 and st.ins == 0 and st.dele == 0  # 好->啊 is a substitution, not D+I
    st = error_rate(["今天天气很好"], ["今天天器很好啊"], unit="char")
    assert (st.sub, st.ins, st.dele) == (1, 1, 0)
    assert st.rate == pytest.approx(100 * 2 / 6)
    assert st.i_plus_d == pytest.approx(100 / 6)
    # WER: "the cat sat on the mat" vs "the cat sit on mat mat now"
    st = error_rate(["the cat sat on the mat"], ["the cat sit on mat mat now"], unit="word")
    assert (st.n_ref, st.sub, st.ins, st.dele) == (6, 2, 1, 0)


def test_error_rate_matches_editdistance_totals():
    rng = random.Random(1)
    words = "a b c d e f".split()
    refs = [" ".join(rng.choices(words, k=rng.randint(1, 12))) for _ in range(50)]
    hyps = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(50)]
    st = error_rate(refs, hyps, unit="word")
    assert st.errors == sum(editdistance.eval(r.split(), h.split()) for r, h in zip(refs, hyps, strict=True))
    assert st.n_ref == sum(len(r.split()) for r in refs)
    with pytest.raises(ValueError, match="2 references but 1"):
        error_rate(["a", "b"], ["a"])


def test_error_stats_accumulate():
    a = ErrorStats(n_ref=10, sub=1, ins=2, dele=0, n_utts=1, n_utts_err=1)
    b = ErrorStats(n_ref=5, sub=0, ins=0, dele=3, n_utts=2, n_utts_err=1)
    c = a + b
    assert (c.n_ref, c.sub, c.ins, c.dele, c.n_utts, c.n_utts_err) == (15, 1, 2, 3, 3, 2)
    assert sum([a, b]) == c
    assert c.rate == pytest.approx(40.0) and c.i_plus_d == pytest.approx(100 * 5 / 15)
    assert ErrorStats().rate == 0.0


def test_rtf():
    assert rtf(2.0, 8.0) == 0.25
    with pytest.raises(ValueError, match="positive"):
        rtf(1.0, 0.0)


def test_format_summary_and_alignment():
    st = ErrorStats(n_ref=200, sub=3, ins=1, dele=2, n_utts=4)
    assert format_summary(st, "char") == "CER 3.00 % [S 3, I 1, D 2, I+D 1.50 %]"
    assert format_summary(st, "word").startswith("WER 3.00 %")
    ops = align("a b c d".split(), "a x c d e".split())
    assert format_alignment(ops) == "a (b->x) c d (*->e)"


def test_write_results_files(tmp_path):
    ids = ["u2", "u1"]
    refs = ["the cat sat", "hello world"]
    hyps = ["the bat sat down", "hello world"]
    st = write_results(tmp_path, "test-greedy", ids, refs, hyps, unit="word")
    assert (st.n_ref, st.sub, st.ins, st.dele) == (5, 1, 1, 0)
    errs = (tmp_path / "errs-test-greedy.txt").read_text().splitlines()
    assert errs[0] == "%WER 40.00 [ 2 / 5, 1 ins, 0 del, 1 sub ]"
    assert "u2:\tthe (cat->bat) sat (*->down)" in errs
    assert "1   cat -> bat" in errs
    recogs = (tmp_path / "recogs-test-greedy.txt").read_text().splitlines()
    assert recogs[0] == "u1:\tref=['hello', 'world']"  # sorted by id
    assert recogs[3] == "u2:\thyp=['the', 'bat', 'sat', 'down']"
    summary = (tmp_path / "wer-summary-test-greedy.txt").read_text().splitlines()
    assert summary[1].split("\t")[:3] == ["test-greedy", "40.00", "20.00"]
    with pytest.raises(ValueError, match="duplicate utterance ids"):
        write_results(tmp_path, "x", ["a", "a"], ["x", "y"], ["x", "y"], unit="char")
