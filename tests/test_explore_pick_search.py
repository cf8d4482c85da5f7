"""The computations behind the claims of notebooks 03 and 04 (kdlab.explore.pick_search, the verdicts of
kdlab.explore.sweep, the end-rule reports, the blank/token split of eq 7's KL), on hand cases and on the
shipped mini-en models and check sets; plus the widgets' disabled controls and the figures' readability."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from kdlab.evaluate.metrics import ErrorStats
from kdlab.explore import compare, end_rules, load_model, load_set, pick_search, run_encoder, searches, sweep, traces
from kdlab.explore.pick_search import NO_CASE, PositionVote
from kdlab.explore.scoring import score
from kdlab.explore.sweep import SweepPoint
from kdlab.tokens import BLANK, MASK
from kdlab.viz import beams as vb
from kdlab.viz import posteriors as vp
from kdlab.widgets.beams import MaskBeamExplorer
from kdlab.widgets.posteriors import PosteriorExplorer


@pytest.fixture(scope="module")
def other():
    return load_set("mini-en", "test-other")


@pytest.fixture(scope="module")
def clean():
    return load_set("mini-en", "test-clean")


def _point(beam: int, errors: list[int], texts: list[str], scores: list[float], n_ref: int = 100) -> SweepPoint:
    stats = ErrorStats(n_ref=n_ref, sub=sum(errors), n_utts=len(errors))
    return SweepPoint(beam, stats, 1.0, float(beam), 100.0, texts, scores, errors)


# ------------------------------------------------------------------ 03: where the beam changes the 1-best


def test_pick_beam_change_prefers_an_utterance_the_beam_repairs(clean):
    utts = clean[:4]
    lo = _point(1, [1, 2, 0, 3], ["a", "b", "c", "d"], [-5.0, -4.0, -1.0, -9.0])
    hi = _point(5, [2, 2, 0, 1], ["a2", "b2", "c", "d2"], [-4.0, -3.0, -1.0, -8.0])
    pick = pick_search.pick_beam_change([hi, lo], utts)
    assert pick.found and pick.index == 3  # 3 -> 1 errors: the beam removes errors
    assert utts[3].id in pick.message and "3 → 1 errors" in pick.message and "3 of 4" in pick.message
    worse = _point(5, [2, 2, 0, 3], ["a2", "b2", "c", "d"], [-4.0, -3.0, -1.0, -9.0])
    assert pick_search.pick_beam_change([lo, worse], utts).index == 0  # else one it makes worse
    same = _point(5, [1, 2, 0, 3], ["a", "b", "c", "d"], [-5.0, -4.0, -1.0, -9.0])
    none = pick_search.pick_beam_change([lo, same], utts)
    assert not none.found and none.shown == 0 and none.message.startswith(NO_CASE)


def test_beam_change_pick_on_test_other_finds_a_real_change(student, other):
    pick = pick_search.beam_change_pick(student, other, beams=(1, 5))
    assert pick.found, pick.message
    utt = other[pick.index]
    out = run_encoder(student, utt)
    texts = [student.text(searches.maskctc_beam_search(student, out, beam=b)[0][0].tokens) for b in (1, 5)]
    assert texts[0] != texts[1]
    errors = [score(student, [utt], [t]).errors for t in texts]
    assert f"{errors[0]} → {errors[1]} errors" in pick.message
    assert errors[1] < errors[0]  # test-other has an utterance the beam repairs: the notebook's default example


def test_beam_effect_and_verdict_on_hand_points():
    lo = _point(1, [1, 0, 2], ["a", "b", "c"], [-3.0, -1.0, -2.0])
    hi = _point(10, [2, 0, 2], ["a2", "b", "c2"], [-2.0, -1.0, -1.5])
    e = sweep.beam_effect([hi, lo])
    assert (e.narrow, e.wide, e.changed, e.better, e.worse, e.higher_score, e.worse_higher) == (1, 10, 2, 0, 1, 2, 1)
    assert e.relative_gain == pytest.approx(100 * (3 - 4) / 3)
    lines = sweep.beam_verdict([lo, hi], "word", "set")
    assert "NOT reproduced" in lines[0] and "3.00 % (B = 1) → 4.00 % (B = 10)" in lines[0]
    assert "changes on 2 of 3" in lines[1] and "model error" in lines[2]
    good = _point(10, [1, 0, 1], ["a", "b", "c2"], [-3.0, -1.0, -1.0])
    lines = sweep.beam_verdict([lo, good], "word", "set")
    assert "agrees with the paper" in lines[0] and len(lines) == 2  # 33 % relative gain >= 5 %


def test_beam_verdict_matches_a_real_sweep(student, clean):
    points = sweep.beam_sweep(student, clean[:8], (1, 10))
    for p in points:
        assert len(p.texts) == len(p.scores) == len(p.errors) == 8
        assert sum(p.errors) == p.stats.errors  # per-utterance errors add up to the corpus count
        assert score(student, clean[:8], p.texts).errors == p.stats.errors
    e = sweep.beam_effect(points)
    assert e.rate_narrow == pytest.approx(points[0].rate) and e.rate_wide == pytest.approx(points[1].rate)
    assert e.changed == sum(a != b for a, b in zip(points[0].texts, points[1].texts, strict=True))
    assert e.higher_score <= e.changed and e.better + e.worse <= e.changed
    assert f"{points[0].rate:.2f} % (B = 1)" in sweep.beam_verdict(points, student.unit)[0]


# ------------------------------------------------------------------ 03: the end rules


def test_end_rules_differ_on_test_other_at_one_beam(teacher, other):
    """The case notebook 03 shows with the multi-engine teacher: on test-other's third utterance the rules
    disagree at B = 10 and agree at B = 3, and at B = 10 the exact rule scores higher with one more word error
    (a model error that the beam rule's search error hides)."""
    reports = end_rules.compare_over_beams(teacher, other[2:3], beams=(10, 3))
    assert [r.beam for r in reports] == [10, 3]
    assert not reports[1].differing
    case = reports[0].differing[0]
    assert case.score_gain > 0 and case.error_change > 0
    rows = end_rules.beam_rows(reports)
    assert [r["1-best differs"] for r in rows] == [1, 0] and rows[0]["exact: higher score, more errors"] == 1
    pick = pick_search.pick_end_rule_case(reports)
    assert pick.report is reports[0] and pick.lesson.case is case and pick.lesson.by == "unit"
    data = end_rules.scatter_over_beams(reports)
    assert data["labels"] == [f"{case.utt_id} (B=10)"] and data["error_changes"] == [case.error_change]


def _case(utt_id: str, gain: float, word: int, char: int) -> end_rules.EndRuleCase:
    beam = end_rules.RuleResult("a", [5], 0.0, 0.0, 0.0, 1, 1)
    exact = end_rules.RuleResult("b", [6], gain, 0.0, 0.0, 1 + word, 1 + char)
    return end_rules.EndRuleCase(utt_id, "a", 1, beam, exact)


def test_pick_end_rule_case_prefers_a_word_level_model_error():
    totals = {"beam": ErrorStats(), "exact": ErrorStats()}
    char_only = end_rules.EndRuleReport([_case("u1", 1.0, 0, 2)], totals, "word", 5)
    word = end_rules.EndRuleReport([_case("u2", 1.0, 1, 1)], totals, "word", 3)
    same = end_rules.EndRuleReport([_case("u3", 0.0, 0, 0)], totals, "word", 10)
    same.cases[0].exact.tokens = [5]  # identical 1-best: not differing
    pick = pick_search.pick_end_rule_case([same, char_only, word])
    assert pick.report is word and pick.lesson.by == "unit" and "Shown: B = 3" in pick.message
    assert pick_search.pick_end_rule_case([same, char_only]).lesson.by == "char"
    none = pick_search.pick_end_rule_case([same])
    assert none.report is None and none.message.startswith(NO_CASE) and "B = 10: 0 of 1" in none.message


# ------------------------------------------------------------------ 03: the CMLM call of the teaching code


def test_cmlm_posteriors_fn_gives_the_greedy_search_its_first_choice(student, clean):
    out = run_encoder(student, clean[3])
    _, trace = searches.maskctc(student, out)
    assert trace.iterations, "the example needs masks"
    ys0 = [MASK if m else t for t, m in zip(trace.ctc_tokens, trace.initial_mask, strict=True)]
    logp = searches.cmlm_posteriors_fn(student, out)(torch.tensor([ys0]))  # (1, L, V)
    assert logp.shape[:2] == (1, len(ys0))
    first = trace.iterations[0]
    for pos, tok, best in first.candidates:
        assert int(logp[0, pos].argmax()) == tok
        assert float(logp[0, pos].max()) == pytest.approx(best, abs=1e-5)


# ------------------------------------------------------------------ 04: a masked position where they differ


def test_pick_disagreement_on_hand_votes(clean):
    vocab = [f"t{i}" for i in range(10)]
    votes = [PositionVote(0, 1, 5, 5, {"s": 5, "x": 5}, 0.1),  # everyone agrees
             PositionVote(1, 2, 5, 6, {"s": 7, "x": 6}, 3.0),  # teacher wrong
             PositionVote(2, 3, 5, 5, {"s": 7, "x": 8}, 1.0)]  # teacher right, both students differ
    pick = pick_search.pick_disagreement(votes, clean[:3], "s", vocab)
    assert (pick.index, pick.position) == (2, 3) and "2 of 2 students differ" in pick.message
    assert "2 of 3 masked positions" in pick.message
    none = pick_search.pick_disagreement(votes[:1], clean[:3], "s", vocab)
    assert not none.found and none.position is None and none.message.startswith(NO_CASE)


def test_pick_disagreement_on_the_shipped_students(teacher, clean):
    students = [load_model("mini-en/student-same-ljca"), load_model("mini-en/student-same-skd")]
    shown = students[1].name
    utts = clean[:6]
    votes = pick_search.position_votes(teacher, students, utts, shown)
    pick = pick_search.pick_disagreement(votes, utts, shown, traces.vocabulary(teacher))
    assert pick.found, pick.message
    utt = utts[pick.index]
    tokens = teacher.tokenizer.encode(utt.text)
    masked = compare.mask_positions(len(tokens))
    assert masked[pick.position]
    dec = compare.compare_decoders(teacher, run_encoder(teacher, utt), students[1], run_encoder(students[1], utt),
                                   tokens, masked)
    t_top, s_top = dec.top_k(pick.position, 1)
    assert t_top[0][0] != s_top[0][0]  # the claim: teacher and student differ there
    assert sum(v.students[shown] != v.teacher for v in votes) >= 1
    assert all(utts[v.utt].id and v.position < len(teacher.tokenizer.encode(utts[v.utt].text)) for v in votes)


# ------------------------------------------------------------------ 04: where eq 7's KL sits


def test_blank_split_by_the_teachers_top_symbol():
    logp = torch.log(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))  # blank (id 0) on frames 0 and 2
    assert BLANK == 0
    split = compare.blank_split(logp, torch.tensor([1.0, 4.0, 3.0]))
    assert (split.blank_frames, split.token_frames) == (2, 1)
    assert split.blank_kl == pytest.approx(2.0) and split.token_kl == pytest.approx(4.0)
    assert split.blank_share == pytest.approx(0.5)
    assert "larger on the token frames" in split.line("s") and "2 of 3 frames" in split.line("s")


def test_blank_split_on_a_shipped_student(teacher, student, clean):
    t_out = run_encoder(teacher, clean[1])
    kl = compare.compare_encoders(t_out, run_encoder(student, clean[1])).kl
    split = compare.blank_split(t_out.ctc_logp, kl)
    assert split.blank_frames + split.token_frames == kl.numel()
    total = split.blank_kl * split.blank_frames + split.token_kl * split.token_frames
    assert total == pytest.approx(float(kl.sum()), rel=1e-4)


# ------------------------------------------------------------------ widgets: controls that cannot act


def test_mask_beam_explorer_disables_what_cannot_act(student, clean):
    w = MaskBeamExplorer(student, clean[3:4], beam=3, precompute=False)
    _, trace = w.search(0, 3)
    assert w.controls["utterance"].disabled and w.controls["utterance"].tooltip
    assert w.controls["beam"].disabled == (sum(trace.initial_mask) == 0)
    assert w.controls["first"].disabled == (len(trace.iterations) <= 1)
    assert all(c.tooltip for c in w.controls.values())


def test_posterior_explorer_starts_at_a_given_position_and_disables_a_lone_student(teacher, clean):
    students = [load_model("mini-en/student-same-skd")]
    w = PosteriorExplorer(teacher, students, clean[3:5], position=2)
    assert w.last["position"] == 2
    assert w.controls["student"].disabled and w.controls["student"].tooltip
    assert not w.controls["position"].disabled and not w.controls["utterance"].disabled
    w.controls["utterance"].value = 1  # the next utterance starts at its first masked position again
    _, dec = w.comparison(students[0].name, 1)
    assert w.last["position"] == dec.masked.index(True)


# ------------------------------------------------------------------ figures: readable labels, colour bars


def test_beam_tree_labels_are_readable(student, clean):
    _, trace = searches.maskctc_beam_search(student, run_encoder(student, clean[3]), beam=3)
    fig = vb.mask_beam_tree(trace, traces.vocabulary(student))
    sizes = [t.get_fontsize() for t in fig.axes[0].texts]
    assert sizes and min(sizes) >= 10
    assert fig.get_figwidth() <= 13  # shown inline without being shrunk much


def test_every_heatmap_has_a_colour_bar(teacher, student, clean):
    t_out, s_out = run_encoder(teacher, clean[3]), run_encoder(student, clean[3])
    vocab = traces.vocabulary(teacher)
    fig = vp.ctc_posteriors([("t", t_out.ctc_logp), ("s", s_out.ctc_logp)], vocab, t_out.frame_s)
    assert any(ax.get_ylabel() == "probability" for ax in fig.axes)
    tokens = teacher.tokenizer.encode(clean[3].text)
    masked = compare.mask_positions(len(tokens))
    dec = compare.compare_decoders(teacher, t_out, student, s_out, tokens, masked)
    fig = vp.decoder_posteriors(dec.teacher_logp, dec.student_logp, masked, tokens, vocab, dec.kl)
    assert any(ax.get_ylabel() == "probability" for ax in fig.axes)
