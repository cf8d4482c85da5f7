"""Algorithm 1 explorer (kdlab.widgets.beams): move a control, check what the widget searched and drew."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from widget_outputs import redrawn

from kdlab.explore import load_set, run_encoder, searches
from kdlab.widgets.beams import MAX_BEAM, MaskBeamExplorer


@pytest.fixture(scope="module")
def utts():
    return load_set("mini-en", "test-clean", limit=5)[3:5]  # two short utterances


def test_beam_slider_redraws_with_that_beam(student, utts):
    w = MaskBeamExplorer(student, utts, beam=2, precompute=False)
    assert w.last["beam"] == 2 and w.last["utt_id"] == utts[0].id
    w.controls["beam"].value = 7
    hyps, trace = searches.maskctc_beam_search(student, run_encoder(student, utts[0]), beam=7)
    assert w.last["beam"] == 7
    assert w.last["text"] == student.text(hyps[0].tokens)
    assert w.last["score"] == pytest.approx(hyps[0].score)
    assert w.last["iterations"] == len(trace.iterations)
    assert len(w.last["final_beam"]) == len(trace.iterations[-1].beam) <= 7
    assert redrawn(w.output, "image/png")


def test_utterance_switch_refits_the_iteration_window(student, utts):
    w = MaskBeamExplorer(student, utts, beam=3, precompute=False)
    w.controls["first"].value = w.controls["first"].max
    w.controls["utterance"].value = 1
    _, trace = w.search(1, 3)
    assert w.last["utt_id"] == utts[1].id
    assert w.controls["first"].max == max(1, len(trace.iterations))
    assert 1 <= w.last["first"] <= w.controls["first"].max


def test_precompute_searches_every_beam_once(student, utts):
    w = MaskBeamExplorer(student, utts[1:], beam=1)
    assert {b for (_, b) in w._search} == set(range(1, MAX_BEAM + 1))
    before = dict(w._search)
    w.controls["beam"].value = MAX_BEAM
    assert w._search == before  # a slider move only redraws
    assert w.last["beam"] == MAX_BEAM
