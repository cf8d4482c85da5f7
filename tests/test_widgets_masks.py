"""Mask-CTC walk widget (kdlab.widgets.masks): p_thr, K, step, finish and reset against the search itself."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from kdlab.explore import load_model, load_set, run_encoder
from kdlab.explore.masking import masks_at
from kdlab.explore.searches import greedy, maskctc
from kdlab.tokens import MASK
from kdlab.widgets.masks import MaskingWalk

STUDENTS = ["mini-en/student-same-skd", "mini-en/student-smaller-skd"]


@pytest.fixture(scope="module")
def utts():
    return load_set("mini-en", "test-clean", limit=2)


@pytest.fixture(scope="module")
def walk(utts):
    return MaskingWalk(utts, models=STUDENTS, model=STUDENTS[0], p_thr=0.99, K=2)


def test_threshold_recolours_masks(walk, utts):
    m = load_model(STUDENTS[0])
    ctc, _ = greedy(run_encoder(m, utts[0]))
    for p in (0.9, 0.999):
        walk.controls["p_thr"].value = p
        want = masks_at(ctc.tokens, ctc.confidences, p)
        assert walk.last["masked"] == want and walk.last["n_masked"] == sum(want)
        assert walk.last["share"] == pytest.approx(sum(want) / len(want))
        assert walk.last["step"] == 0 and not walk._traces  # re-masking needs no CMLM call


def test_steps_follow_the_trace_to_the_reference(walk, utts):
    walk.controls["p_thr"].value = 0.99
    walk.controls["K"].value = 3
    m = load_model(STUDENTS[0])
    tokens, trace = maskctc(m, run_encoder(m, utts[0]), p_thr=0.99, K=3)
    walk.step()
    assert walk.last["step"] == 1
    assert [(f.position, f.token) for f in walk.last["fills"]] == sorted(trace.iterations[0].chosen)
    assert sum(t == MASK for t in walk.last["tokens"]) == sum(trace.initial_mask) - 3
    walk.step(10**6)
    assert walk.last["done"] and walk.last["step"] == len(trace.iterations)
    assert walk.last["hypothesis"] == m.text(tokens) and walk.last["tokens"] == tokens
    assert [h for _, _, h in walk.last["ops"] if h is not None] == m.text(tokens).split()
    assert [r for _, r, _ in walk.last["ops"] if r is not None] == utts[0].text.lower().split()
    assert len(walk._traces) == 1  # one trace per (model, utterance, p_thr, K)
    walk.reset()
    assert walk.last["step"] == 0 and walk.last["hypothesis"] is None


def test_model_and_utterance_switch(walk, utts):
    walk.controls["model"].value = STUDENTS[1]
    walk.controls["utterance"].value = utts[1].id
    m = load_model(STUDENTS[1])
    ctc, _ = greedy(run_encoder(m, utts[1]))
    assert walk.last["model"] == STUDENTS[1] and walk.last["id"] == utts[1].id
    assert walk.last["n_masked"] == sum(masks_at(ctc.tokens, ctc.confidences, walk.last["p_thr"]))
    walk.controls["p_thr"].value = 0.5
    walk.step(10**6)
    assert walk.last["done"] and MASK not in walk.last["tokens"]


def test_starts_on_the_requested_utterance(utts):
    walk = MaskingWalk(utts, models=STUDENTS[1:], model=STUDENTS[1], utterance=utts[1].id, p_thr=0.9, K=1)
    assert walk.last["id"] == utts[1].id and walk.last["p_thr"] == pytest.approx(0.9) and walk.last["K"] == 1


def test_controls_that_cannot_act_are_disabled_with_a_reason(utts):
    walk = MaskingWalk(utts, models=STUDENTS[:1], model=STUDENTS[0], p_thr=0.99, K=2)
    c = walk.controls
    assert walk.last["n_masked"] > 0
    assert not c["K"].disabled and not c["step"].disabled and not c["finish"].disabled
    assert c["reset"].disabled and "already" in c["reset"].tooltip  # nothing to undo yet
    walk.step()
    assert not c["reset"].disabled
    walk.step(10**6)
    assert walk.last["done"] and c["step"].disabled and c["finish"].disabled
    assert "every mask is filled" in c["step"].tooltip
    walk.reset()
    assert not c["step"].disabled and c["reset"].disabled
    for p in (0.5, 0.9, 0.999):  # K can act exactly when something is masked
        c["p_thr"].value = p
        nothing = walk.last["n_masked"] == 0
        assert c["K"].disabled == nothing and c["step"].disabled == nothing
        assert ("nothing is masked" in c["K"].tooltip) == nothing


def test_k_acts_before_the_first_step(utts):
    """Before "step", K changes the iteration count shown (⌈N/K⌉, eq 5), so it is never inert there."""
    from kdlab.explore.masking import iterations_needed

    walk = MaskingWalk(utts, models=STUDENTS[:1], model=STUDENTS[0], p_thr=0.999, K=1)
    n = walk.last["n_masked"]
    for k in (1, 3):
        walk.controls["K"].value = k
        shown = walk.output.outputs[0]["data"]["text/html"]
        assert f"K = {k}: {iterations_needed(n, k)} iteration(s)" in shown
