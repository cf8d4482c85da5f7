"""CTC widgets (kdlab.widgets.ctc): set a control, check what the widget computed and drew."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from widget_outputs import redrawn

from kdlab.explore import load_set
from kdlab.explore.segments import ctc_view, token_spans, top_tokens, word_spans
from kdlab.widgets.ctc import FrameInspector, UtterancePicker


@pytest.fixture(scope="module")
def utts():
    return load_set("mini-en", "test-clean", limit=2) + load_set("mini-en", "test-other", limit=1)


def test_picker_plays_the_chosen_word(teacher, utts):
    picker = UtterancePicker(teacher, utts)
    assert picker.last["id"] == utts[0].id and picker.last["segment"] is None
    assert picker.last["clip_s"] == pytest.approx(utts[0].duration, abs=1e-3)
    words = word_spans(teacher, token_spans(teacher, ctc_view(teacher, utts[0]).segments))
    picker.controls["segment"].value = 2
    assert picker.last["segment"] == words[2]
    assert picker.last["clip_s"] == pytest.approx((words[2].end - words[2].start) * 0.04, abs=1e-3)
    assert redrawn(picker.output, "image/png", "text/html")


def test_picker_switches_utterance_and_resets_the_word(teacher, utts):
    picker = UtterancePicker(teacher, utts)
    picker.controls["segment"].value = 1
    picker.controls["utterance"].value = utts[2].id
    v = ctc_view(teacher, utts[2])
    assert picker.last["id"] == utts[2].id and picker.last["segment"] is None
    assert picker.controls["segment"].value == UtterancePicker.WHOLE
    assert picker.last["greedy"] == teacher.text(v.greedy.tokens)
    assert len(picker.controls["segment"].options) == len(picker.last["words"]) + 1


def test_inspector_reports_the_frame(teacher, utts):
    insp = FrameInspector(teacher, utts, k=5)
    v = ctc_view(teacher, utts[0])
    seg = v.segments[3]
    insp.controls["frame"].value = seg.start
    last = insp.last
    assert last["frame"] == seg.start and last["time_s"] == pytest.approx(seg.start * 0.04)
    assert last["token"].label == teacher.piece(seg.token) and last["token_index"] == 3
    assert last["top"] == [(teacher.piece(i), p) for i, p in top_tokens(v.out.ctc_logp, seg.start, 5)]
    assert last["word"] is not None and last["word"].start <= seg.start < last["word"].end
    blank = next(t for t in range(v.n_frames) if not any(s.start <= t < s.end for s in v.segments))
    insp.controls["frame"].value = blank
    assert insp.last["token"] is None


def test_inspector_slider_follows_the_utterance(teacher, utts):
    insp = FrameInspector(teacher, utts)
    insp.controls["frame"].value = 50
    insp.controls["utterance"].value = utts[1].id
    n = ctc_view(teacher, utts[1]).n_frames
    assert insp.controls["frame"].max == n - 1 and insp.last["id"] == utts[1].id
    assert insp.last["frame"] == min(50, n - 1)


def test_widgets_start_on_the_requested_utterance(teacher, utts):
    assert UtterancePicker(teacher, utts, utterance=utts[1].id).last["id"] == utts[1].id
    assert FrameInspector(teacher, utts, utterance="no-such-id").last["id"] == utts[0].id
    with pytest.raises(ValueError, match="no utterances"):
        FrameInspector(teacher, [])


def test_controls_are_enabled_when_they_can_act(teacher, utts):
    picker, inspector = UtterancePicker(teacher, utts), FrameInspector(teacher, utts)
    assert not picker.controls["segment"].disabled and "play one aligned word" in picker.controls["segment"].tooltip
    assert not inspector.controls["frame"].disabled and inspector.controls["frame"].tooltip == "the frame to inspect"
