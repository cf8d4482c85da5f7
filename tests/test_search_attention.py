"""Joint CTC/attention beam search on a toy deterministic decoder: the exact end rule against brute force,
the default (ESPnet's) end rule against an independent step-by-step implementation of it."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from kdlab.nn.decoder import TransformerDecoder, select_cache
from kdlab.search.ctc_prefix_score import CTCPrefixScorer
from kdlab.search.joint_beam import joint_beam_search
from kdlab.tokens import BLANK, MASK, SOS_EOS

V = 7  # 0 blank, 1 unk, 2 sos/eos, 3 mask, 4..6 regular
OUTPUTS = [1, 4, 5, 6]


class ToyDecoder:
    """log p(next | prefix) from a fixed table indexed by (last token, position, utterance)."""

    def __init__(self, seed: int, n_utts: int = 2) -> None:
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(n_utts, V, 8, V, generator=g) * 2
        self.calls = 0

    def step(self, ys: torch.Tensor, rows: torch.Tensor, cache):
        self.calls += 1
        logits = self.table[rows, ys[:, -1], ys.shape[1] - 1].clone()  # (N, V)
        logits[:, [BLANK, MASK]] = -1e9
        steps = ys.shape[1] if cache is None else cache["steps"] + 1
        assert cache is None or torch.equal(cache["ys"], ys[:, :-1])  # the cache follows the beam
        return logits.log_softmax(-1), {"ys": ys.clone(), "steps": steps}

    def att_score(self, utt: int, y: tuple[int, ...]) -> float:
        ys, total = [SOS_EOS], 0.0
        for c in (*y, SOS_EOS):
            logp, _ = self.step(torch.tensor([ys]), torch.tensor([utt]), None)
            total += float(logp[0, c])
            ys.append(c)
        return total


def ctc_score(logp: torch.Tensor, y: tuple[int, ...]) -> float:
    T = logp.shape[0]
    if not y:
        return float(logp[:, BLANK].sum())
    return -float(F.ctc_loss(logp[:, None], torch.tensor([y]), torch.tensor([T]), torch.tensor([len(y)]),
                             reduction="sum", zero_infinity=False))


def brute_force(dec: ToyDecoder, utt: int, logp: torch.Tensor, lam: float, maxlen: int) -> list:
    scored = []
    for n in range(1, maxlen + 1):
        for y in itertools.product(OUTPUTS, repeat=n):
            s = (1 - lam) * dec.att_score(utt, y)
            if lam > 0:
                s += lam * ctc_score(logp, y)
            if s > float("-inf"):
                scored.append((s, list(y)))
    return sorted(scored, reverse=True)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_large_beam_equals_brute_force(lam):
    torch.manual_seed(1)
    dec = ToyDecoder(seed=3)
    T = 4
    ctc = torch.randn(2, T, V, dtype=torch.float64)
    ctc[:, :, MASK] = -30.0
    ctc = ctc.log_softmax(-1)
    lens = torch.tensor([T, 3])
    found = joint_beam_search(ctc, lens, dec.step, beam=200, ctc_weight=lam, nbest=5, end_rule="exact")
    for u in range(2):
        exact = brute_force(dec, u, ctc[u, : lens[u]], lam, maxlen=int(lens[u]))[:5]
        assert [h.tokens for h in found[u]] == [y for _, y in exact]
        assert [h.score for h in found[u]] == pytest.approx([s for s, _ in exact], abs=1e-6)
        for h in found[u]:
            assert h.att_score == pytest.approx(dec.att_score(u, tuple(h.tokens)), abs=1e-5)
            if lam > 0:
                assert h.ctc_score == pytest.approx(ctc_score(ctc[u, : lens[u]], tuple(h.tokens)), abs=1e-6)


def test_nbest_sorted_distinct_nonempty_and_batched_like_single():
    dec = ToyDecoder(seed=5)
    torch.manual_seed(0)
    ctc = torch.randn(2, 6, V).log_softmax(-1)
    lens = torch.tensor([6, 4])
    found, traces = joint_beam_search(ctc, lens, dec.step, beam=4, ctc_weight=0.3, trace=True)
    for u, hyps in enumerate(found):
        assert 1 <= len(hyps) <= 4
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps)
        assert all(1 <= len(h.tokens) <= int(lens[u]) for h in hyps)
        assert all(t not in (BLANK, SOS_EOS, MASK) for h in hyps for t in h.tokens)
        assert traces[u].steps and all(len(s.running) <= 4 for s in traces[u].steps)
        # one utterance alone gives the same N-best
        alone = joint_beam_search(ctc[u : u + 1, : lens[u]], lens[u : u + 1],
                                  lambda ys, rows, c, u=u: dec.step(ys, rows + u, c), beam=4, ctc_weight=0.3)
        assert [h.tokens for h in alone[0]] == [h.tokens for h in hyps]


def test_maxlen_and_min_length():
    dec = ToyDecoder(seed=2)
    dec.table[:, :, :, SOS_EOS] = 10.0  # <eos> is by far the most likely next token
    ctc = torch.randn(1, 3, V).log_softmax(-1)
    hyps = joint_beam_search(ctc, torch.tensor([3]), dec.step, beam=3, ctc_weight=0.0, maxlen_ratio=1.0)[0]
    assert all(len(h.tokens) == 1 for h in hyps)  # never empty, ends as soon as allowed
    dec2 = ToyDecoder(seed=2)
    dec2.table[:, :, :, SOS_EOS] = -20.0  # never wants to stop: forced at maxlen = T' = 3
    hyps = joint_beam_search(ctc, torch.tensor([3]), dec2.step, beam=3, ctc_weight=0.0)[0]
    assert all(len(h.tokens) == 3 for h in hyps)


@torch.no_grad()
def test_cached_transformer_decoder_searches_like_recomputing_every_prefix():
    """The decoder cache (reordered per step, encoder keys kept per utterance) changes no hypothesis."""
    torch.manual_seed(6)
    dec = TransformerDecoder(V, 16, 2, 32, 2, 0.0, 0.0, 0.0, causal=True).eval()
    with torch.no_grad():
        dec.output_layer.bias[SOS_EOS] -= 2.0  # longer hypotheses, ending at different steps
    enc, lens = torch.randn(3, 6, 16), torch.tensor([6, 3, 5])
    ctc = torch.randn(3, 6, V).log_softmax(-1)

    def cached(ys, rows, cache):
        logits, cache = dec.step(ys, enc[rows], lens[rows], cache)
        return logits.log_softmax(-1), cache

    def recomputed(ys, rows, cache):  # no cache: teacher forcing over the whole prefix
        logits = dec(ys, torch.full((len(ys),), ys.size(1)), enc[rows], lens[rows])[:, -1]
        return logits.log_softmax(-1), None

    for lam in (0.0, 0.3):
        fast = joint_beam_search(ctc, lens, cached, beam=3, ctc_weight=lam, nbest=3)
        slow = joint_beam_search(ctc, lens, recomputed, beam=3, ctc_weight=lam, nbest=3)
        assert {len(h.tokens) for hyps in slow for h in hyps} != {1}  # the search went beyond one step
        for a, b in zip(fast, slow, strict=True):
            assert [h.tokens for h in a] == [h.tokens for h in b]
            assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


def test_prefix_scorer_vectorised_equals_ctc_loss():
    torch.manual_seed(4)
    ctc = torch.randn(1, 6, V, dtype=torch.float64).log_softmax(-1)
    sc = CTCPrefixScorer(ctc, torch.tensor([6]))
    rows = torch.tensor([0])
    st = sc.initial(rows)
    for y in ([4], [4, 4], [4, 4, 5]):
        psi = sc.prefix_scores(st, rows, torch.tensor([[y[-1]]]))
        st = sc.advance(st, rows, torch.tensor([y[-1]]), psi[:, 0])
        assert float(sc.full_score(st, rows)[0]) == pytest.approx(ctc_score(ctc[0], tuple(y)), abs=1e-9)
    # psi(y) = Σ over all label sequences starting with y of p_ctc (brute force over sequences up to T)
    total = sum(torch.tensor(ctc_score(ctc[0], (4, 4, 5) + rest)).exp()
                for n in range(0, 4) for rest in itertools.product(range(1, V), repeat=n))
    assert float(st.psi[0]) == pytest.approx(float(torch.log(total)), abs=1e-6)


def test_select_cache_and_errors():
    cache = [{"k": torch.arange(6).view(3, 2)}, (torch.arange(3),)]
    out = select_cache(cache, torch.tensor([2, 0]))
    assert out[0]["k"].tolist() == [[4, 5], [0, 1]] and out[1][0].tolist() == [2, 0]
    with pytest.raises(TypeError, match="cache"):
        select_cache({"k": "x"}, torch.tensor([0]))
    with pytest.raises(ValueError, match="ctc_weight"):
        joint_beam_search(torch.zeros(1, 2, V), torch.tensor([2]), ToyDecoder(0).step, ctc_weight=1.5)


def _logsumexp(xs: list[float]) -> float:
    m = max(xs)
    return m if m == float("-inf") else m + math.log(sum(math.exp(x - m) for x in xs))


def ctc_prefix_score(logp: torch.Tensor, y: tuple[int, ...]) -> float:
    """log psi(y), written independently of CTCPrefixScorer: the probability that the label sequence of a CTC
    path starts with y = sum over frames t of the probability that y's last label is entered at t."""
    if not y:
        return 0.0
    lp = logp.tolist()
    ext = [BLANK]
    for c in y:
        ext += [c, BLANK]
    last = len(ext) - 2  # state of y's last label
    alpha = [float("-inf")] * len(ext)
    alpha[0], alpha[1] = lp[0][BLANK], lp[0][ext[1]]
    entered = [alpha[1]] if last == 1 else []
    for t in range(1, len(lp)):
        into = [alpha[last - 1]] + ([alpha[last - 2]] if last >= 3 and ext[last] != ext[last - 2] else [])
        entered.append(_logsumexp(into) + lp[t][ext[last]])
        alpha = [_logsumexp([alpha[s]] + ([alpha[s - 1]] if s else [])
                            + ([alpha[s - 2]] if s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2] else []))
                 + lp[t][ext[s]] for s in range(len(ext))]
    return _logsumexp(entered)


def beam_rule_reference(dec: ToyDecoder, u: int, logp: torch.Tensor, lam: float, B: int, nbest: int) -> list:
    """ESPnet's rule, one hypothesis at a time: the B best of all expansions (the pre-beam of each running
    hypothesis, <eos> included) survive; those ending in <eos> leave the beam; stop when none runs."""
    P = min(int(1.5 * B) if lam > 0 else B, V - 2)
    maxlen, running, ended, step = logp.shape[0], [((), 0.0)], [], 0
    while running:
        cands = []
        for y, score in running:
            att = dec.step(torch.tensor([[SOS_EOS, *y]]), torch.tensor([u]), None)[0][0].double().clone()
            att[[BLANK, MASK]] = float("-inf")
            if step == 0:
                att[SOS_EOS] = float("-inf")
            if step >= maxlen:
                att[[c for c in range(V) if c != SOS_EOS]] = float("-inf")
            for a, c in zip(*(x.tolist() for x in att.topk(P)), strict=True):
                ctc_new = ctc_score(logp, y) if c == SOS_EOS else ctc_prefix_score(logp, (*y, c))
                inc = lam * (ctc_new - ctc_prefix_score(logp, y)) if lam > 0 else 0.0
                if a > float("-inf") and inc > float("-inf"):
                    cands.append((score + (1 - lam) * a + inc, y, c))
        cands.sort(key=lambda x: -x[0])
        running = []
        for score, y, c in cands[:B]:
            if c == SOS_EOS:
                ended.append((score, list(y)))
            else:
                running.append(((*y, c), score))
        step += 1
    return sorted(ended, key=lambda e: -e[0])[:nbest]


def test_reference_prefix_score_equals_the_sum_over_continuations():
    torch.manual_seed(4)
    logp = torch.randn(5, V, dtype=torch.float64).log_softmax(-1)
    for y in ((4,), (4, 4), (5, 4, 6)):
        total = sum(math.exp(ctc_score(logp, y + rest)) for n in range(0, 5 - len(y) + 1)
                    for rest in itertools.product(range(1, V), repeat=n))
        assert ctc_prefix_score(logp, y) == pytest.approx(math.log(total), abs=1e-9)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_default_end_rule_equals_the_step_by_step_beam_rule(lam):
    for seed in range(6):
        dec = ToyDecoder(seed=seed, n_utts=3)
        torch.manual_seed(seed)
        ctc = torch.randn(3, 5, V, dtype=torch.float64)
        ctc[:, :, MASK] = -30.0
        ctc = ctc.log_softmax(-1)
        lens = torch.tensor([5, 3, 4])
        found = joint_beam_search(ctc, lens, dec.step, beam=3, ctc_weight=lam, nbest=3)
        for u in range(3):
            ref = beam_rule_reference(dec, u, ctc[u, : lens[u]], lam, B=3, nbest=3)
            assert [h.tokens for h in found[u]] == [y for _, y in ref], (seed, u)
            assert [h.score for h in found[u]] == pytest.approx([s for s, _ in ref], abs=1e-6)


def test_exact_rule_never_returns_a_lower_scoring_best():
    differ = 0
    for seed in range(20):
        dec = ToyDecoder(seed=seed, n_utts=2)
        dec.table[:, :, :, SOS_EOS] += 1.0  # a decoder keen to stop: the rules disagree more often
        torch.manual_seed(seed)
        ctc = torch.randn(2, 6, V).log_softmax(-1)
        lens = torch.tensor([6, 5])
        beam = joint_beam_search(ctc, lens, dec.step, beam=2, ctc_weight=0.3, nbest=1)
        exact = joint_beam_search(ctc, lens, dec.step, beam=2, ctc_weight=0.3, nbest=1, end_rule="exact")
        for b, e in zip(beam, exact, strict=True):
            assert e[0].score >= b[0].score - 1e-9
            differ += e[0].tokens != b[0].tokens
    assert differ > 0  # the two rules are not the same search
    with pytest.raises(ValueError, match="end_rule"):
        joint_beam_search(ctc, lens, dec.step, end_rule="espnet")
