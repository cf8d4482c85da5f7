"""Notebook 07's layer on the shipped KD-family models: one utterance through every family, streaming
emission times, transducer lattices and paths, the test-set tables, and the explorer widget."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from widget_outputs import redrawn

from kdlab.explore import families as fam
from kdlab.explore import lattice, load_model, load_set, streaming
from kdlab.search.streaming import latency_ms
from kdlab.viz import families as viz
from kdlab.widgets.families import FamilyExplorer


@pytest.fixture(scope="module")
def models():
    found = fam.family_models("mini-en")
    assert [run.name for run, _ in found] == [r.name for runs in fam.FAMILY_RUNS.values() for r in runs]
    return found


@pytest.fixture(scope="module")
def utt():
    return load_set("mini-en", "test-clean", limit=2)[1]


def _model(models, name):
    return load_model(next(spec for run, spec in models if run.name == name))


def test_every_family_model_decodes_the_utterance_with_its_methods(models, utt):
    rows = fam.utterance_rows(utt, models)
    assert [(r["model"], r["method"]) for r in rows] == [(run.label, m) for run, _ in models for m in run.methods]
    assert all(r["hypothesis"] and r["rate %"] >= 0 for r in rows)
    teacher = [r for r in rows if r["family"] == "rnnt" and "teacher" in r["model"]]
    assert all(r["rate %"] < 50 for r in teacher)  # the 2 M transducer teacher gets most words right


def test_inter_kd_heads_are_compared_with_the_teacher_frame_by_frame(models, utt):
    teacher = load_model("mini-en/teacher")
    student = _model(models, "inter-kd")
    views = fam.head_views(teacher, [student], utt)
    assert [v.head for v in views] == ["block 2", "final"]
    assert views[0].kl.shape == views[1].kl.shape and (views[0].kl >= 0).all()
    # the final head's greedy text is the model's own CTC greedy decoding
    assert views[1].text == student.text(fam.decode_utterance(student, utt, ["ctc_greedy"])["ctc_greedy"])


def test_streaming_emissions_wait_for_their_chunk_and_match_the_full_decoding(models, utt):
    m = _model(models, "stream-layer")
    chunk = m.model.encoder.chunk_size
    found = streaming.emissions(m, utt)
    tokens = fam.decode_utterance(m, utt, ["ctc_greedy"])["ctc_greedy"]
    assert [e.token for e in found] == tokens  # chunk by chunk = the masked full-utterance forward
    assert all(0 < e.delay_s * 1000 <= latency_ms(chunk) + 1e-6 for e in found)
    small = streaming.emission_summary("x", 2, streaming.emissions(m, utt, 2))
    assert small["max delay ms"] <= latency_ms(2) < streaming.emission_summary("x", chunk, found)["latency ms"]
    fig = viz.emission_timeline(streaming.timeline_rows({"stream-layer": found}), utt.duration)
    assert fig.axes[0].get_xlim()[1] == pytest.approx(utt.duration)


def test_transducer_lattice_paths_cross_the_whole_lattice(models, utt):
    views = {name: lattice.lattice_of(_model(models, name), utt) for name in ("rnnt-teacher", "rnnt-onebest")}
    teacher = views["rnnt-teacher"]
    frames, nodes = teacher.logits.shape[:2]
    assert nodes == len(teacher.tokens) + 1
    path = teacher.path()
    assert path.sum() == frames + nodes - 1 and path[0, 0] and path[-1, -1]  # one node per emission
    row = lattice.path_kl(teacher, views["rnnt-onebest"])
    assert row["KL on teacher path"] >= 0 and 0 <= row["path nodes shared %"] <= 100
    emit = teacher.emit_probs()
    assert (emit[:, -1] == 0).all() and ((emit >= 0) & (emit <= 1)).all()
    fig = viz.lattice_paths(emit, {n: v.path() for n, v in views.items()}, ["a"] * len(teacher.tokens))
    assert len(fig.axes[0].get_lines()) == 2


def test_test_set_tables_and_verdicts(models):
    rows = fam.test_set_rows(models, "test-clean", limit=2)
    assert len(rows) == sum(len(run.methods) for run, _ in models)
    assert all(r["utterances"] == 2 and r["rate %"] >= 0 for r in rows)
    full = fam.card_rows(models)
    assert all(isinstance(r["test-clean %"], float) for r in full)  # every card has its full-set figure
    lines = fam.verdicts(full, models, "test-clean %")
    assert len(lines) == sum(len(c) for c in fam.CLAIMS.values())
    assert all(line.endswith(("yes", "no")) for line in lines)


def test_family_explorer_switches_family_utterance_and_chunk(models):
    utts = load_set("mini-en", "test-clean", limit=2)
    w = FamilyExplorer(load_model("mini-en/teacher"), models, utts)
    assert w.last["family"] == "inter" and len(w.last["rows"]) == 6  # 3 students × 2 heads
    w.controls["family"].value = "stream"
    w.controls["chunk"].value = 4
    assert w.last["chunk"] == 4 and {r["chunk"] for r in w.last["rows"]} == {4}
    w.controls["family"].value = "rnnt"
    w.controls["utterance"].value = utts[1].id
    assert w.last["utt_id"] == utts[1].id and len(w.last["rows"]) == 3  # the three students vs the teacher
    assert redrawn(w.output)


def test_head_log_probs_needs_a_ctc_student(models, utt):
    with pytest.raises(ValueError, match="CTC student"):
        fam.head_log_probs(_model(models, "rnnt-none"), utt)
    assert torch.is_tensor(fam.head_log_probs(_model(models, "inter-none"), utt)["final"])
