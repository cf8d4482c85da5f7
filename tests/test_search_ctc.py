"""CTC greedy, prefix beam search and forced alignment on tiny hand-made emissions."""

import itertools
import math

import pytest
import torch

from kdlab.search.ctc import ctc_forced_align, ctc_greedy, ctc_prefix_beam, greedy_tensors


def frames(ids: list[int], V: int = 5, p: float = 0.9) -> torch.Tensor:
    """(T, V) log-probs whose argmax per frame is ``ids[t]`` with probability ``p``."""
    probs = torch.full((len(ids), V), (1 - p) / (V - 1))
    probs[torch.arange(len(ids)), torch.tensor(ids)] = p
    return probs.log()


def brute_force_ctc(logp: torch.Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """log p_ctc(y) for every label sequence y by summing over all T-frame alignments (eq 3)."""
    T, V = logp.shape
    total: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(V), repeat=T):
        y, prev = [], None
        for s in path:
            if s != blank and s != prev:
                y.append(s)
            prev = s
        lp = float(sum(logp[t, s] for t, s in enumerate(path)))
        key = tuple(y)
        total[key] = math.log(math.exp(total[key]) + math.exp(lp)) if key in total else lp
    return total


def test_greedy_seven_frames_gives_1_2_3():
    logp = frames([0, 1, 1, 0, 2, 3, 3])[None]  # (1, 7, 5)
    [res] = ctc_greedy(logp, torch.tensor([7]))
    assert res.tokens == [1, 2, 3]
    assert res.spans == [(1, 3), (4, 5), (5, 7)]
    assert res.confidences == pytest.approx([0.9, 0.9, 0.9])


def test_greedy_confidence_is_segment_max_and_repeats_need_blank():
    logp = frames([1, 1, 0, 1, 2, 2], p=0.6)
    logp[1] = frames([1], p=0.95)[0]  # second frame of the first run is more confident
    [res] = ctc_greedy(logp[None], torch.tensor([6]))
    assert res.tokens == [1, 1, 2]
    assert res.confidences == pytest.approx([0.95, 0.6, 0.6])


def test_greedy_batch_respects_lengths_and_traces():
    a = frames([1, 0, 2, 2, 3])
    b = torch.cat([frames([4, 4, 0]), frames([3, 3])])  # last 2 frames are padding
    res, tr = ctc_greedy(torch.stack([a, b]), torch.tensor([5, 3]), trace=True)
    assert [r.tokens for r in res] == [[1, 2, 3], [4]]
    assert tr[1].frame_ids == [4, 4, 0]
    assert tr[0].frame_probs == pytest.approx([0.9] * 5)
    g = greedy_tensors(torch.stack([a, b]), torch.tensor([5, 3]))
    assert g.lens.tolist() == [3, 1] and g.tokens.shape == (2, 3)


def test_greedy_all_blank_and_bad_lengths():
    [res] = ctc_greedy(frames([0, 0, 0])[None], torch.tensor([3]))
    assert res.tokens == [] and res.spans == []
    with pytest.raises(ValueError, match="lens"):
        ctc_greedy(frames([0, 1])[None], torch.tensor([3]))


@pytest.mark.parametrize("seed", [0, 1])
def test_prefix_beam_with_large_beam_is_exact(seed):
    torch.manual_seed(seed)
    T, V = 4, 3
    logp = torch.randn(T, V, dtype=torch.float64).log_softmax(-1)
    exact = brute_force_ctc(logp)
    hyps = ctc_prefix_beam(logp[None], torch.tensor([T]), beam=100)[0]
    assert len(hyps) == len(exact)
    for h in hyps:
        assert h.score == pytest.approx(exact[tuple(h.tokens)], abs=1e-9)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert tuple(hyps[0].tokens) == max(exact, key=exact.get)


def test_prefix_beam_can_beat_greedy_and_traces():
    # the best path says [1] with blank frames, but the summed probability of [2] is larger
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2], [0.5, 0.0, 0.3, 0.2]])
    logp = probs.clamp_min(1e-9).log()
    greedy = ctc_greedy(logp[None], torch.tensor([2]))[0].tokens
    hyps, tr = ctc_prefix_beam(logp[None], torch.tensor([2]), beam=4, trace=True)
    assert greedy == []  # blank blank: p = 0.25 ...
    assert hyps[0][0].tokens == [2]  # ... but [2] sums 0.3·0.3 + 0.3·0.5 + 0.5·0.3 = 0.39
    assert hyps[0][0].score == pytest.approx(math.log(0.39), abs=1e-6)
    assert len(tr[0].beams) == 2 and len(tr[0].beams[-1]) <= 4


def test_forced_align_matches_greedy_on_confident_frames():
    logp = frames([0, 1, 1, 0, 2, 3, 3, 0]).log_softmax(-1)
    segs = ctc_forced_align(logp, [1, 2, 3])
    assert [(s.token, s.start, s.end) for s in segs] == [(1, 1, 3), (2, 4, 5), (3, 5, 7)]
    assert all(s.score == pytest.approx(0.9, abs=1e-5) for s in segs)
    greedy = ctc_greedy(logp[None], torch.tensor([8]))[0]
    assert [(s.start, s.end) for s in segs] == greedy.spans


def test_forced_align_repeats_and_errors():
    logp = frames([1, 0, 1, 0]).log_softmax(-1)
    segs = ctc_forced_align(logp, [1, 1])
    assert [(s.start, s.end) for s in segs] == [(0, 1), (2, 3)]
    with pytest.raises(ValueError, match="cannot align"):
        ctc_forced_align(logp[:2], [1, 1])
    with pytest.raises(ValueError, match="no blank"):
        ctc_forced_align(logp, [0, 1])
