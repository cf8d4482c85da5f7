"""CTC data functions (kdlab.explore.segments) and figures (kdlab.viz.ctc) on hand cases and a shipped model."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib.colors import to_hex

from kdlab.data.tokenizer import normalize_text
from kdlab.explore import load_set
from kdlab.explore import segments as sg
from kdlab.tokens import BLANK
from kdlab.viz import ctc as vc


@pytest.fixture(scope="module")
def view(teacher):
    return sg.ctc_view(teacher, load_set("mini-en", "test-clean", limit=1)[0])


# ------------------------------------------------------------------ eq 3's collapse η


@pytest.mark.parametrize("path, out", [("aa∅ab", "aab"), ("∅aa∅∅bb", "ab"), ("a∅a", "aa"), ("aaa", "a"), ("∅∅", "")])
def test_collapse_merges_repeats_then_drops_blanks(path, out):
    assert "".join(sg.collapse(list(path), "∅")) == out
    assert sg.collapse([0, 5, 5, 0, 5, 7], BLANK) == [5, 5, 7]


def _groupby_collapse(path):
    return [k for k, _ in itertools.groupby(path) if k != "∅"]


def test_alignments_are_exactly_the_preimage():
    paths = sg.alignments(["a", "b"], 4)
    brute = [list(p) for p in itertools.product("ab∅", repeat=4) if _groupby_collapse(p) == ["a", "b"]]
    assert sorted(map(tuple, paths)) == sorted(map(tuple, brute))
    assert len(paths) == 15
    assert sg.alignments(["a", "a"], 2) == []  # a repeat needs a blank between: 3 frames at least
    with pytest.raises(ValueError, match="too many"):
        sg.alignments(list("abcdef"), 12)


def test_greedy_rows_never_split_a_run(teacher, view):
    path = view.path.frame_ids
    cuts = sg.cut_points(path, 7)
    assert cuts[0] == 0 and cuts[-1] == len(path)
    assert all(path[c] != path[c - 1] for c in cuts[1:-1])
    rows = sg.greedy_path_rows(teacher, view.path, n_frames=len(path), width=7)
    joined = [s for _, out in sg.collapse_rows(rows) for s in out]
    assert joined == teacher.pieces(view.greedy.tokens)  # rows collapse to the greedy transcript


# ------------------------------------------------------------------ trellis and forced path


def _viterbi(tr: np.ndarray, tokens: list[int]) -> float:
    """Best path score through the 2L+1 state trellis, written out independently of torchaudio."""
    S, T = tr.shape
    ext = sg.extended_tokens(tokens)
    best = np.full(S, -np.inf)
    best[:2] = tr[:2, 0]
    for t in range(1, T):
        prev = best.copy()
        for s in range(S):
            cands = [prev[s]] + ([prev[s - 1]] if s >= 1 else [])
            if s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2]:
                cands.append(prev[s - 2])
            best[s] = max(cands) + tr[s, t]
    return float(max(best[-1], best[-2]))


def test_forced_path_is_a_valid_best_path_through_the_trellis(teacher, view):
    tr = sg.trellis(view.out.ctc_logp, view.ref_tokens).numpy()  # (2L+1, T')
    assert tr.shape == (2 * len(view.ref_tokens) + 1, view.n_frames)
    assert np.allclose(tr[0], view.out.ctc_logp[:, BLANK].numpy())
    states = sg.path_states(view.segments, view.n_frames)
    assert states[0] in (0, 1) and states[-1] in (tr.shape[0] - 1, tr.shape[0] - 2)
    assert all(0 <= b - a <= 2 for a, b in zip(states, states[1:], strict=False))
    score = sum(tr[s, t] for t, s in enumerate(states))
    assert score == pytest.approx(_viterbi(tr, view.ref_tokens), abs=1e-3)
    assert sg.collapse(sg.frame_tokens(view.segments, view.n_frames), BLANK) == view.ref_tokens
    assert sg.trellis_labels(teacher, view.ref_tokens)[::2] == ["∅"] * (len(view.ref_tokens) + 1)


def test_words_of_the_forced_alignment_spell_the_reference(teacher, view):
    tokens = sg.token_spans(teacher, view.segments)
    words = sg.word_spans(teacher, tokens)
    assert [w.label for w in words] == normalize_text(view.utt.text, "en").split()
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))
    clips = sg.span_clips(view.utt, words[:2], view.out.frame_s)
    for (label, clip), w in zip(clips, words, strict=False):
        assert label == w.label
        assert abs(len(clip) - (w.end - w.start) * view.out.frame_s * view.utt.sample_rate) <= 1


def test_frame_helpers(teacher, view):
    forced = sg.frame_tokens(view.segments, view.n_frames)
    differ = sg.path_differences(view.path.frame_ids, forced)
    assert differ == [t for t in range(view.n_frames) if view.path.frame_ids[t] != forced[t]]
    seg = view.segments[0]
    assert sg.span_at(sg.token_spans(teacher, view.segments), seg.start) == 0
    top = sg.top_tokens(view.out.ctc_logp, seg.start, k=5)
    assert top[0][0] == view.path.frame_ids[seg.start]
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True) and sum(p for _, p in top) <= 1 + 1e-6
    assert sg.emission_rows(view.out.ctc_logp) == list(range(view.out.ctc_logp.size(1)))
    few = sg.emission_rows(view.out.ctc_logp, max_rows=10)
    assert len(few) == 10 and BLANK in few
    assert sg.window_around([3], 100, 40) == (0, 40) and sg.window_around([90], 100, 40) == (60, 100)


# ------------------------------------------------------------------ figures


def test_emission_figure_marks_blank_and_frame(teacher, view):
    labels = teacher.pieces(range(view.out.ctc_logp.size(1)))
    fig = vc.emission_figure(view.out.ctc_logp, labels, marker=12)
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (len(labels), view.n_frames)
    blank_tick = ax.get_yticklabels()[0]
    assert blank_tick.get_text() == "∅" and to_hex(blank_tick.get_color()) == vc.BLANK_COLOUR
    assert any(list(line.get_xdata()) == [12, 12] for line in ax.lines)


def test_trellis_figure_draws_the_path(teacher, view):
    tr = sg.trellis(view.out.ctc_logp, view.ref_tokens)
    states = sg.path_states(view.segments, view.n_frames)
    fig = vc.trellis_figure(tr, sg.trellis_labels(teacher, view.ref_tokens), states, frames=(5, 30))
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == list(range(5, 30)) and list(line.get_ydata()) == states[5:30]


def test_segments_and_paths_figures(teacher, view):
    words = sg.word_spans(teacher, sg.token_spans(teacher, view.segments))
    fig = vc.segments_figure(view.utt.audio, view.utt.sample_rate, view.out.fbank, words, view.out.frame_s,
                             highlight=1)
    ax_w = fig.axes[0]
    assert [t.get_text() for t in ax_w.texts] == [w.label for w in words]
    assert ax_w.texts[1].get_fontweight() == "bold"
    zoom = vc.segments_figure(view.utt.audio, view.utt.sample_rate, view.out.fbank, words, view.out.frame_s,
                              window=(0.0, 1.0))
    assert zoom.axes[1].get_xlim() == (0.0, 1.0) and len(zoom.axes[0].texts) < len(words)
    forced = sg.frame_tokens(view.segments, view.n_frames)
    differ = sg.path_differences(view.path.frame_ids, forced)
    rows = [("greedy", teacher.pieces(view.path.frame_ids)), ("forced", teacher.pieces(forced))]
    fig = vc.path_comparison_figure(rows, differ)
    assert len(fig.axes[0].collections[0].get_offsets()) == len(differ)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["greedy", "forced"]


def test_tables_and_inspector(teacher, view):
    table = vc.collapse_table_html(sg.collapse_rows([list("aa∅ab"), list("∅∅")]))
    assert "<b>a a b</b>" in table and "(empty)" in table
    clips = sg.span_clips(view.utt, sg.token_spans(teacher, view.segments)[:3], view.out.frame_s)
    assert vc.clips_html(clips, view.utt.sample_rate).count("<audio") == 3
    labels = teacher.pieces(range(view.out.ctc_logp.size(1)))
    top = [(teacher.piece(i), p) for i, p in sg.top_tokens(view.out.ctc_logp, 20)]
    fig = vc.frame_inspector_figure(view.out.ctc_logp, labels, sg.emission_rows(view.out.ctc_logp, 12), 20, top)
    bars = fig.axes[1].patches
    assert [b.get_width() for b in bars] == pytest.approx([p for _, p in top])
    assert [t.get_text() for t in fig.axes[1].get_yticklabels()] == [s for s, _ in top]  # best on top


def test_emission_heatmaps_have_a_colour_bar(teacher, view):
    labels = teacher.pieces(range(view.out.ctc_logp.size(1)))
    for log, label in ((False, "p(token | frame)"), (True, "log p(token | frame)")):
        fig = vc.emission_figure(view.out.ctc_logp, labels, log=log)
        assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == label
    top = [(teacher.piece(i), p) for i, p in sg.top_tokens(view.out.ctc_logp, 3)]
    fig = vc.frame_inspector_figure(view.out.ctc_logp, labels, sg.emission_rows(view.out.ctc_logp, 12), 3, top)
    assert len(fig.axes) == 3 and fig.axes[2].get_ylabel() == "p(token | frame)"
