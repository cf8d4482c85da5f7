"""Mask-CTC greedy and beam search (Algorithm 1) against hand-computed and exhaustive results."""

import itertools

import pytest
import torch

from kdlab.search.kbest import topk_fill_sets
from kdlab.search.maskctc import maskctc_greedy, mlm_log_posteriors
from kdlab.search.maskctc_beam import maskctc_beam, select_distinct
from kdlab.tokens import MASK

V = 7  # 0 blank, 1 unk, 2 sos/eos, 3 mask, 4..6 regular
OUTPUTS = [1, 4, 5, 6]


class ToyMLM:
    """Deterministic context-dependent CMLM: logits[l] = Σ_m W[l, m, ys[m]] over valid positions m."""

    def __init__(self, seed: int, L: int = 6) -> None:
        self.W = torch.randn(L, L, V, V, generator=torch.Generator().manual_seed(seed)) * 1.5
        self.calls = 0

    def __call__(self, ys: torch.Tensor, ys_lens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        L = ys.shape[1]
        valid = torch.arange(L)[None, :, None] < ys_lens[:, None, None]
        onehot = torch.nn.functional.one_hot(ys, V).float() * valid  # (N, L, V)
        return torch.einsum("nmv,lmvw->nlw", onehot, self.W[:L, :L]) + rows[:, None, None]


def ctc_emission(utts: list[tuple[list[int], list[float]]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, V) log-probs whose greedy CTC output is ``tokens`` with the given confidences."""
    T = max(2 * len(t) + 1 for t, _ in utts)
    logp = torch.full((len(utts), T, V), -20.0)
    logp[:, :, 0] = 0.0
    for b, (toks, conf) in enumerate(utts):
        for i, (t, c) in enumerate(zip(toks, conf, strict=True)):
            row = torch.full((V,), (1 - c) / (V - 1))
            row[t] = c
            logp[b, 2 * i + 1] = row.log()
    lens = torch.tensor([2 * len(t) + 1 for t, _ in utts])
    return logp.log_softmax(-1), lens


def exhaustive(mlm: ToyMLM, toks: list[int], conf: list[float], row: int, K: int = 2, p_thr: float = 0.99):
    """Best total eq 5 score over all fill orders, position sets and tokens."""
    ys = torch.tensor(toks)
    masked = [i for i, c in enumerate(conf) if c < p_thr]
    ys[masked] = MASK
    best = (float("-inf"), None)

    def rec(ys: torch.Tensor, rem: list[int], score: float) -> None:
        nonlocal best
        if not rem:
            best = max(best, (score, ys.tolist()))
            return
        lp = mlm_log_posteriors(mlm(ys[None], torch.tensor([len(ys)]), torch.tensor([row])))[0]
        for pos in itertools.combinations(rem, min(K, len(rem))):
            for fill in itertools.product(OUTPUTS, repeat=len(pos)):
                y2 = ys.clone()
                y2[list(pos)] = torch.tensor(fill)
                gain = sum(float(lp[p, t]) for p, t in zip(pos, fill, strict=True))
                rec(y2, [p for p in rem if p not in pos], score + gain)

    rec(ys, masked, 0.0)
    return best


UTTS = [([4, 5, 6, 4, 5], [0.5, 0.999, 0.6, 0.7, 0.999]), ([5, 5, 4], [0.3, 0.4, 0.2]), ([6], [0.999])]


def test_greedy_hand_computed_single_mask():
    # one mask at position 1, the MLM strongly prefers token 6 there
    logp, lens = ctc_emission([([4, 5, 4], [0.999, 0.5, 0.999])])

    def mlm(ys, ys_lens, rows):
        out = torch.zeros(*ys.shape, V)
        out[:, :, 6] = 5.0
        out[:, :, MASK] = 50.0  # never predicted, whatever the logit
        return out

    out, tr = maskctc_greedy(logp, lens, mlm, trace=True)
    assert out == [[4, 6, 4]]
    assert tr[0].ctc_tokens == [4, 5, 4] and tr[0].initial_mask == [False, True, False]
    [it] = tr[0].iterations
    assert it.k == 1 and it.masked == [1] and it.chosen == [(1, 6)] and it.tokens == [4, 6, 4]


def test_greedy_schedule_fills_K_per_iteration_easy_first():
    mlm = ToyMLM(seed=0)
    logp, lens = ctc_emission(UTTS)
    out, tr = maskctc_greedy(logp, lens, mlm, K=2, trace=True)
    assert [len(t.iterations) for t in tr] == [2, 2, 0]  # ⌈3/2⌉, ⌈3/2⌉, no masks
    assert [it.k for it in tr[0].iterations] == [2, 1]  # last iteration: N mod K
    assert mlm.calls == 2  # one MLM call per iteration for the whole batch
    first = tr[0].iterations[0]
    ranked = sorted(first.candidates, key=lambda c: -c[2])
    assert sorted(first.chosen) == sorted((p, t) for p, t, _ in ranked[:2])
    assert out[2] == [6] and out[0][1] == 5 and out[0][4] == 5  # confident tokens are kept
    assert all(t not in (0, 2, 3) for y in out for t in y)
    out_k1 = maskctc_greedy(logp, lens, ToyMLM(seed=0), K=1)
    assert len(out_k1) == 3


def test_beam1_equals_greedy():
    for seed in range(4):
        logp, lens = ctc_emission(UTTS)
        greedy = maskctc_greedy(logp, lens, ToyMLM(seed))
        beam = maskctc_beam(logp, lens, ToyMLM(seed), beam=1)
        assert [h[0].tokens for h in beam] == greedy


def test_large_beam_equals_exhaustive_search_and_beats_greedy():
    differs = 0
    for seed in range(3):
        mlm = ToyMLM(seed)
        logp, lens = ctc_emission(UTTS)
        found = maskctc_beam(logp, lens, mlm, beam=100)
        greedy = maskctc_greedy(logp, lens, mlm)
        for b, (toks, conf) in enumerate(UTTS):
            score, best = exhaustive(mlm, toks, conf, row=b)
            assert found[b][0].tokens == best
            assert found[b][0].score == pytest.approx(score, abs=1e-4)
            differs += greedy[b] != best
    assert differs > 0  # the toy cases are not all solved by greedy


def test_beam_returns_distinct_sorted_beam_and_trace():
    mlm = ToyMLM(seed=1)
    logp, lens = ctc_emission(UTTS)
    found, tr = maskctc_beam(logp, lens, mlm, beam=5, trace=True)
    assert mlm.calls == 2  # all hypotheses × utterances in one call per iteration
    for hyps in found[:2]:
        assert len(hyps) == 5
        assert len({tuple(h.tokens) for h in hyps}) == 5
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert found[2][0].tokens == [6] and len(found[2]) == 1
    its = tr[0].iterations
    assert [it.k for it in its] == [2, 1] and len(its[0].beam) == 5
    assert its[-1].beam[0].tokens == found[0][0].tokens
    assert all(MASK not in h.tokens for h in its[-1].beam)


def test_topk_fill_sets_exact_small_case():
    logp = torch.log(torch.tensor([[[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]]]))  # (1, 3 positions, 2 tokens)
    mask = torch.tensor([[True, True, False]])
    sc, pos, tok = topk_fill_sets(logp, mask, torch.tensor([2]), B=3)
    pairs = [(a * b, (0, i), (1, j)) for i, a in enumerate([0.6, 0.4]) for j, b in enumerate([0.9, 0.1])]
    expect = sorted(pairs, reverse=True)[:3]
    assert sc[0].exp().tolist() == pytest.approx([e[0] for e in expect])
    for r, (_, p0, p1) in enumerate(expect):
        assert sorted(zip(pos[0, r].tolist(), tok[0, r].tolist(), strict=True)) == [p0, p1]
    sc1, pos1, _ = topk_fill_sets(logp, mask, torch.tensor([1]), B=3)
    assert sc1[0].exp().tolist() == pytest.approx([0.9, 0.6, 0.4]) and pos1.shape == (1, 3, 1)


def test_select_distinct_keeps_best_per_sequence():
    utt = torch.tensor([0, 0, 0, 1, 1])
    ys = torch.tensor([[4, 5], [4, 5], [5, 5], [4, 4], [6, 6]])
    score = torch.tensor([-2.0, -1.0, -3.0, -0.5, float("-inf")])
    keep = select_distinct(utt, ys, score, B=5)
    assert keep.tolist() == [1, 2, 3]
    assert select_distinct(utt, ys, score, B=1).tolist() == [1, 3]


def test_no_masks_and_bad_arguments():
    logp, lens = ctc_emission([([4, 5], [0.999, 0.999])])
    mlm = ToyMLM(0)
    assert maskctc_greedy(logp, lens, mlm) == [[4, 5]] and mlm.calls == 0
    assert maskctc_beam(logp, lens, mlm)[0][0].tokens == [4, 5]
    with pytest.raises(ValueError, match="K"):
        maskctc_greedy(logp, lens, mlm, K=0)
    with pytest.raises(ValueError, match="p_thr"):
        maskctc_beam(logp, lens, mlm, p_thr=1.5)


def test_topk_fill_sets_pairs_equal_dp_and_brute_force():
    from kdlab.search import kbest

    g = torch.Generator().manual_seed(0)
    logp = torch.randn(3, 6, 5, generator=g).log_softmax(-1)
    mask = torch.rand(3, 6, generator=g) < 0.7
    mask[:, 0] = True
    k = torch.tensor([2, 1, 2])
    sc, pos, tok = topk_fill_sets(logp, mask, k, B=4)
    vals = logp.double()
    dp_sc, _ = kbest._dp(vals.masked_fill(~mask[..., None], float("-inf")), 2, 4)
    for h in range(3):
        masked = mask[h].nonzero().flatten().tolist()
        n = int(k[h])
        sets = [sum(float(logp[h, p, t]) for p, t in zip(ps, ts, strict=True))
                for ps in itertools.combinations(masked, n) for ts in itertools.product(range(5), repeat=n)]
        expect = sorted(sets, reverse=True)[:4]
        assert sc[h, : len(expect)].tolist() == pytest.approx(expect, abs=1e-5)
        assert dp_sc[h, int(k[h]), : len(expect)].tolist() == pytest.approx(expect, abs=1e-5)
        for r in range(len(expect)):
            chosen = [(p, t) for p, t in zip(pos[h, r].tolist(), tok[h, r].tolist(), strict=True) if p >= 0]
            assert len({p for p, _ in chosen}) == int(k[h]) and all(mask[h, p] for p, _ in chosen)
            assert sum(float(logp[h, p, t]) for p, t in chosen) == pytest.approx(float(sc[h, r]), abs=1e-5)


@pytest.mark.parametrize("rows", [[0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 1, 1, 2, 2, 2]])
def test_search_mlm_fn_matches_the_full_cmlm_at_masked_slots(rows: list[int]):
    """The searches' CMLM wrapper (sources per utterance, last block at ``<mask>`` slots only) gives the full
    decoder's log posteriors at every masked slot, for beams of equal and of unequal width; shipped model,
    real test utterances."""
    from kdlab import pretrained
    from kdlab.evaluate.sets import load_records, make_batches
    from kdlab.nn.masks import length_mask
    from kdlab.pretrained.check import check_manifest
    from kdlab.search.decode import make_mlm_fn

    model, tok, cmvn, _ = pretrained.load("mini-en", "student-same-skd")
    batch = next(iter(make_batches(load_records(check_manifest("mini-en", "test-clean"), limit=3), tok, cmvn, 10**9)))
    with torch.inference_mode():
        enc, enc_lens = model.encode(batch["feats"], batch["feat_lens"])
        r = torch.tensor(rows)
        ys, lens = batch["tokens"][r].clamp_min(0), batch["token_lens"][r]
        g = torch.Generator().manual_seed(0)
        ys = ys.masked_fill(torch.rand(ys.shape, generator=g) < 0.3, MASK)  # a different mask per hypothesis
        got = mlm_log_posteriors(make_mlm_fn(model, enc, enc_lens)(ys, lens, r))
        ref = mlm_log_posteriors(model.mlm_logits(enc[r], enc_lens[r], ys, lens))
    m = (ys == MASK) & length_mask(lens, ys.shape[1])
    assert int(m.sum()) > 10
    assert torch.allclose(got[m], ref[m], atol=1e-4)
