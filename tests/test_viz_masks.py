"""Mask-CTC data functions (kdlab.explore.masking, kdlab.explore.scoring) and figures (kdlab.viz.masks) on a
shipped student."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.colors import to_hex

from kdlab.data.tokenizer import normalize_text
from kdlab.explore import load_set, run_encoder
from kdlab.explore import masking as mk
from kdlab.explore.scoring import reference_alignment
from kdlab.explore.searches import greedy, maskctc
from kdlab.tokens import MASK
from kdlab.viz import masks as vm


@pytest.fixture(scope="module")
def utt():
    return load_set("mini-en", "test-clean", limit=2)[1]


@pytest.fixture(scope="module")
def out(student, utt):
    return run_encoder(student, utt)


@pytest.fixture(scope="module")
def walk(student, out):
    return maskctc(student, out, p_thr=0.99, K=2)


@pytest.mark.parametrize("p_thr", [0.5, 0.9, 0.99, 0.999])
def test_masks_at_is_the_search_rule(student, out, p_thr):
    _, trace = maskctc(student, out, p_thr=p_thr, K=3)
    assert mk.masks_at(trace.ctc_tokens, trace.confidences, p_thr) == trace.initial_mask
    ctc, _ = greedy(out)
    assert ctc.tokens == trace.ctc_tokens


def test_mask_counts_grow_with_the_threshold(out):
    ctc, _ = greedy(out)
    counts = mk.mask_counts(ctc.confidences, [0.0, 0.5, 0.9, 0.99, 1.01])
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == len(ctc.tokens)


def test_fills_walk_every_mask_easy_first(student, walk):
    tokens, trace = walk
    fills = mk.all_fills(student, trace)
    masked = [i for i, m in enumerate(trace.initial_mask) if m]
    assert sorted(f.position for step in fills for f in step) == masked  # each mask filled exactly once
    assert [len(s) for s in fills[:-1]] == [2] * (len(fills) - 1) and 1 <= len(fills[-1]) <= 2
    assert len(fills) == -(-len(masked) // 2)  # ⌈N/K⌉ iterations
    for i in range(len(trace.iterations)):
        cands = mk.iteration_candidates(student, trace, i)
        chosen = [c.prob for c in cands if c.chosen]
        others = [c.prob for c in cands if not c.chosen]
        assert not others or min(chosen) >= max(others) - 1e-9  # eq 5: the most probable k first
    assert mk.iteration_candidates(student, trace, len(trace.iterations)) == []
    start = [MASK if m else t for t, m in zip(trace.ctc_tokens, trace.initial_mask, strict=True)]
    assert mk.state_after(trace, 0) == start
    assert mk.final_tokens(trace) == tokens
    assert sum(t == MASK for t in mk.state_after(trace, 1)) == len(masked) - 2


def test_reference_alignment_covers_both_sides(student, utt, walk):
    tokens, _ = walk
    ops = reference_alignment(student, utt.text, tokens)
    assert [r for _, r, _ in ops if r is not None] == normalize_text(utt.text, "en").split()
    assert [h for _, _, h in ops if h is not None] == student.text(tokens).split()


def test_confidence_figure_colours_masks(student, out):
    ctc, _ = greedy(out)
    masked = mk.masks_at(ctc.tokens, ctc.confidences, 0.95)
    fig = vm.confidence_figure(student.pieces(ctc.tokens), ctc.confidences, 0.95, masked)
    ax = fig.axes[0]
    colours = [to_hex(b.get_facecolor()) for b in ax.patches]
    assert colours.count(vm.MASKED_COLOUR) == sum(masked) and len(colours) == len(ctc.tokens)
    assert ax.get_yscale() == "logit"
    assert any(list(line.get_ydata()) == [0.95, 0.95] for line in ax.lines)
    assert f"{sum(masked)} of {len(masked)} tokens masked" in ax.get_title()
    assert [t.get_text() for t in ax.texts] == student.pieces(ctc.tokens)


def test_share_sequence_and_candidates(student, walk):
    _, trace = walk
    fig = vm.mask_share_figure([0.5, 0.99], [1, 3], 4, p_thr=0.99)
    assert list(fig.axes[0].lines[0].get_ydata()) == [25.0, 75.0]
    html = vm.sequence_html(mk.masked_pieces(student, trace.ctc_tokens, trace.initial_mask), trace.initial_mask)
    assert html.count("&lt;mask&gt;") == sum(trace.initial_mask)
    assert html.count('class="kd-tok"') == len(trace.ctc_tokens)
    cands = mk.iteration_candidates(student, trace, 0)
    fig = vm.candidates_figure(cands)
    greens = [b for b in fig.axes[0].patches if to_hex(b.get_facecolor()) == "#2e7d32"]
    assert len(greens) == 2 and [b.get_height() for b in fig.axes[0].patches] == pytest.approx([c.prob for c in cands])
    assert vm.candidates_figure([]).axes[0].get_title() == "no masks to fill"


def test_fill_grid_shows_steps_so_far(student, walk):
    _, trace = walk
    pieces, fills = student.pieces(trace.ctc_tokens), mk.all_fills(student, trace)
    kept = len(pieces) - sum(trace.initial_mask)
    fig = vm.fill_grid_figure(pieces, trace.initial_mask, fills, upto=2)
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape[:2] == (3, len(pieces))
    assert len(ax.texts) == kept + sum(len(s) for s in fills[:2])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["CTC + masks", "iter 1", "iter 2"]
    full = vm.fill_grid_figure(pieces, trace.initial_mask, fills)
    assert len(full.axes[0].texts) == len(pieces)  # every position shows its token once
