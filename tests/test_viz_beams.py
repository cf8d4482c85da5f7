"""Algorithm 1 / AR beam data helpers (kdlab.explore.traces, sweep, end_rules) and figures (kdlab.viz.beams)
on hand cases and the shipped mini-en models."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.colors import to_hex

from kdlab.explore import end_rules as er
from kdlab.explore import load_set, run_encoder, searches, sweep, traces
from kdlab.explore.scoring import reference_text, score
from kdlab.tokens import MASK
from kdlab.viz import beams as vb


@pytest.fixture(scope="module")
def utts():
    return load_set("mini-en", "test-clean", limit=5)[3:5]  # two short utterances (3.7 s, 1.3 s)


@pytest.fixture(scope="module")
def beam_run(student, utts):
    out = run_encoder(student, utts[0])
    return out, searches.maskctc_beam_search(student, out, beam=4)


# ------------------------------------------------------------------ Algorithm 1 as rows and as a tree


def test_mask_beam_rows_follow_the_trace(student, beam_run):
    _, (hyps, trace) = beam_run
    rows = traces.mask_beam_rows(trace, traces.vocabulary(student))
    start = rows[0]
    assert start["iteration"] == 0 and start["masks left"] == sum(trace.initial_mask)
    assert start["hypothesis"].count(traces.MASK_MARK) == sum(trace.initial_mask)
    n_iter = len(trace.iterations)
    assert n_iter == math.ceil(sum(trace.initial_mask) / 2)
    for i in range(1, n_iter + 1):
        it = [r for r in rows if r["iteration"] == i]
        assert 1 <= len(it) <= 4
        assert [r["score"] for r in it] == sorted((r["score"] for r in it), reverse=True)
        prev = [r for r in rows if r["iteration"] == i - 1]
        assert all(0 <= r["parent"] < len(prev) for r in it)
        assert all(r["masks left"] == max(0, sum(trace.initial_mask) - 2 * i) for r in it)
    final = [r for r in rows if r["iteration"] == n_iter]
    assert final[0]["score"] == pytest.approx(hyps[0].score, abs=1e-4)
    assert final[0]["hypothesis"] == traces.show(hyps[0].tokens, traces.vocabulary(student))


def test_show_marks_masks_and_word_starts():
    vocab = ["∅", "<unk>", "<eos>", "<mask>", "▁ab", "c", "▁d"]
    assert traces.show([4, 5, MASK, 6], vocab) == "abc■ d"


def test_mask_beam_tree_draws_every_node_with_its_fill(student, beam_run):
    _, (_, trace) = beam_run
    vocab = traces.vocabulary(student)
    fig = vb.mask_beam_tree(trace, vocab, first=2, count=3)
    ax = fig.axes[0]
    shown = trace.iterations[1:4]
    labels = [t.get_text() for t in ax.texts]
    assert labels == [vb._fill_label(h.chosen, vocab) for it in shown for h in it.beam]
    n_dots = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_dots == len(trace.iterations[0].beam) + sum(len(it.beam) for it in shown)
    assert "B = 4" in ax.get_title()


# ------------------------------------------------------------------ decoder calls, AR trace


def test_decoder_calls_from_both_traces(student, teacher, utts, beam_run):
    out, (_, trace) = beam_run
    ar_hyps, ar_trace = searches.ar_beam_search(teacher, run_encoder(teacher, utts[0]))
    calls = traces.decoder_calls(trace, 2, ar_hyps[0], ar_trace)
    assert calls.cmlm_calls == calls.cmlm_expected == math.ceil(sum(trace.initial_mask) / 2)
    assert calls.ar_needed == len(ar_hyps[0].tokens) + 1 <= calls.ar_steps
    _, greedy_trace = searches.maskctc_beam_search(student, out, beam=1)
    assert len(greedy_trace.iterations) == calls.cmlm_calls  # the beam adds no CMLM call
    labels, counts = calls.bars()
    fig = vb.decoder_calls_plot(labels, counts)
    assert [p.get_width() for p in fig.axes[0].patches] == counts
    rows = traces.ar_beam_rows(ar_trace, traces.vocabulary(teacher), max_steps=2)
    assert {r["step"] for r in rows} == {0, 1} and rows[0]["joint score"] == pytest.approx(
        ar_trace.steps[0].running[0][1], abs=1e-3)


def test_ar_beam_plot_marks_ended_and_best_path(teacher, utts):
    hyps, trace = searches.ar_beam_search(teacher, run_encoder(teacher, utts[1]))
    ax = vb.ar_beam_plot(trace, hyps[0].tokens).axes[0]
    crosses = ax.collections[1].get_offsets()
    assert len(crosses) == sum(len(s.ended) for s in trace.steps)
    path = ax.lines[0].get_xydata()
    assert len(path) == len(hyps[0].tokens)  # one running prefix per step until <eos>


# ------------------------------------------------------------------ Table 3 analogue


def test_beam_sweep_scores_each_beam_like_a_direct_decode(student, utts):
    points = sweep.beam_sweep(student, utts, beams=(1, 3))
    assert [p.beam for p in points] == [1, 3]
    for p in points:
        texts = [student.text(searches.maskctc_beam_search(student, run_encoder(student, u), beam=p.beam)[0][0].tokens)
                 for u in utts]
        assert p.stats == score(student, utts, texts)
        assert p.audio_s == pytest.approx(sum(u.duration for u in utts))
        assert p.rtf == pytest.approx((p.encoder_s + p.search_s) / p.audio_s) and p.rtf > 0
    rows = sweep.sweep_table(points, student.unit)
    assert rows[0]["beam B"] == 1 and "WER %" in rows[0]
    fig = vb.beam_sweep_plot([p.beam for p in points], [p.rate for p in points], [p.rtf for p in points])
    assert list(fig.axes[0].lines[0].get_ydata()) == [p.rate for p in points]
    assert list(fig.axes[1].lines[0].get_ydata()) == [p.rtf for p in points]
    assert "measured on this machine" in fig.axes[1].get_title()


def test_references_are_normalised_like_kdlab_decode(student, utts):
    assert reference_text(student, utts[0]) == reference_text(student, utts[0]).lower()
    assert score(student, utts[:1], [reference_text(student, utts[0])]).errors == 0


# ------------------------------------------------------------------ the two end rules


def _result(text: str, score_: float, errors: int, chars: int) -> er.RuleResult:
    return er.RuleResult(text, [ord(ch) for ch in text], score_, score_, score_, errors, chars)


def test_model_errors_need_a_higher_score_and_more_errors():
    same = er.EndRuleCase("same", "a b", 2, _result("a b", -1, 0, 0), _result("a b", -1, 0, 0))
    worse = er.EndRuleCase("worse", "a b", 2, _result("a b", -3, 0, 0), _result("a", -2, 1, 1))
    better = er.EndRuleCase("better", "a b", 2, _result("a c", -3, 1, 1), _result("a b c", -2, 1, 0))
    report = er.EndRuleReport([same, worse, better], {}, "word")
    assert [c.utt_id for c in report.differing] == ["worse", "better"]
    assert [c.utt_id for c in report.model_errors()] == ["worse"]
    lesson = er.find_lesson(report)
    assert lesson.case is worse and lesson.by == "unit" and "differs on 2" in lesson.message
    rows = lesson.rows("word")
    assert [r["rule"] for r in rows] == ["beam", "exact"] and rows[1]["alignment"] == "a [-b]"
    char_only = er.EndRuleCase("chars", "ab", 1, _result("ab", -3, 1, 1), _result("abc", -2, 1, 2))
    lesson = er.find_lesson(er.EndRuleReport([char_only], {}, "word"))
    assert lesson.case is char_only and lesson.by == "char"
    data = er.scatter_data(report, by="char")
    assert data == {"score_gains": [1, 1], "error_changes": [1, -1], "labels": ["worse", "better"], "unit": "char"}
    assert len(vb.end_rule_plot(**data).axes[0].collections[0].get_offsets()) == 2
    none = er.find_lesson(er.EndRuleReport([same], {}, "word"))
    assert none.case is None and none.rows("word") == [] and "None of them" in none.message


def test_alignment_text_marks_each_edit():
    assert er.alignment_text("a b c", "a x c d", "word") == "a [b→x] c [+d]"
    assert er.alignment_text("abc", "ac", "char") == "a[-b]c"


def test_exact_rule_never_scores_lower_on_check_utterances(teacher):
    utts = load_set("mini-en", "test-other", limit=3)
    report = er.compare_end_rules(teacher, utts)
    for c in report.cases:
        assert c.exact.score >= c.beam.score - 1e-6
        assert c.differs == (c.beam.tokens != c.exact.tokens)
        assert c.reference == reference_text(teacher, next(u for u in utts if u.id == c.utt_id))
    for rule in er.RULES:
        assert report.totals[rule].errors == sum(getattr(c, rule).errors for c in report.cases)
    assert [r["rule"] for r in er.totals_rows(report)] == list(er.RULES)


def test_end_rule_plot_colours_model_errors_red():
    fig = vb.end_rule_plot([0.5, 1.2], [2, 0], ["a", "b"])
    dots = fig.axes[0].collections[0]
    assert [tuple(p) for p in dots.get_offsets()] == [(0.5, 2.0), (1.2, 0.0)]
    assert [to_hex(c) for c in dots.get_facecolors()] == [to_hex("C3"), to_hex("C0")]
    empty = vb.end_rule_plot([], [], [])
    assert "no utterance" in empty.axes[0].texts[0].get_text()
