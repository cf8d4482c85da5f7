"""Teacher-vs-student explorer (kdlab.widgets.posteriors): move a control, check what the widget computed."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
from widget_outputs import redrawn

from kdlab.explore import compare, load_model, load_set, run_encoder, traces
from kdlab.widgets.posteriors import PosteriorExplorer


@pytest.fixture(scope="module")
def students():
    return [load_model("mini-en/student-same-ljca"), load_model("mini-en/student-smaller-skd")]


@pytest.fixture(scope="module")
def utts():
    return load_set("mini-en", "test-clean", limit=5)[3:5]


def _expected(teacher, student, utt):
    tokens = teacher.tokenizer.encode(utt.text)
    masked = compare.mask_positions(len(tokens))
    return compare.compare_decoders(teacher, run_encoder(teacher, utt), student, run_encoder(student, utt), tokens,
                                    masked)


def test_starts_at_the_first_masked_position(teacher, students, utts):
    w = PosteriorExplorer(teacher, students, utts)
    dec = _expected(teacher, students[0], utts[0])
    assert w.controls["position"].max == len(dec.tokens) - 1
    assert w.last["position"] == dec.masked.index(True) and w.last["masked"]
    assert redrawn(w.output, "image/png")


def test_position_shows_teacher_and_student_top_k(teacher, students, utts):
    w = PosteriorExplorer(teacher, students, utts, top_k=3)
    dec = _expected(teacher, students[0], utts[0])
    vocab = traces.vocabulary(teacher)
    for pos in (1, len(dec.tokens) - 1):
        w.controls["position"].value = pos
        t_top, s_top = dec.top_k(pos, 3)
        assert w.last["position"] == pos and w.last["token"] == vocab[dec.tokens[pos]]
        assert w.last["masked"] == dec.masked[pos]
        assert [t for t, _ in w.last["teacher_top"]] == [vocab[t] for t, _ in t_top]
        assert [p for _, p in w.last["student_top"]] == pytest.approx([p for _, p in s_top])
        if dec.masked[pos]:
            assert w.last["kl"] == pytest.approx(float(dec.kl[pos]))
        else:
            assert math.isnan(w.last["kl"])  # an observed position is not part of eq 11


def test_student_and_utterance_switch(teacher, students, utts):
    w = PosteriorExplorer(teacher, students, utts)
    w.controls["student"].value = students[1].name
    enc = compare.compare_encoders(run_encoder(teacher, utts[0]), run_encoder(students[1], utts[0]))
    assert w.last["student"] == students[1].name
    assert w.last["enc_kl"] == pytest.approx(enc.mean_kl, rel=1e-5)
    w.controls["utterance"].value = 1
    dec = _expected(teacher, students[1], utts[1])
    assert w.last["utt_id"] == utts[1].id and w.controls["position"].max == len(dec.tokens) - 1
    assert w.last["position"] == dec.masked.index(True)
    assert w.last["dec_kl"] == pytest.approx(dec.mean_kl, rel=1e-5)
