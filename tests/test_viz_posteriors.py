"""Teacher-vs-student comparisons (kdlab.explore.compare) against the KD losses of eq 7 and 11, and their
figures (kdlab.viz.posteriors), on hand cases and the shipped mini-en models."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.colors import to_hex

from kdlab.explore import compare, load_model, load_set, run_encoder, traces
from kdlab.kd.losses import dec_frame_kd, enc_frame_kd, teacher_token_dist
from kdlab.viz import posteriors as vp


@pytest.fixture(scope="module")
def utt():
    return load_set("mini-en", "test-clean", limit=5)[4]  # 1.3 s


@pytest.fixture(scope="module")
def outs(teacher, student, utt):
    return run_encoder(teacher, utt), run_encoder(student, utt)


@pytest.fixture(scope="module")
def dec(teacher, student, utt, outs):
    tokens = teacher.tokenizer.encode(utt.text)
    return compare.compare_decoders(teacher, outs[0], student, outs[1], tokens, compare.mask_positions(len(tokens)))


# ------------------------------------------------------------------ KL by hand and against the losses


def test_kl_rows_by_hand():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]).log()
    q = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]]).log()
    kl = compare.kl_rows(p, q)
    assert kl[0].item() == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="shape"):
        compare.kl_rows(p, q[:1])


def test_encoder_kl_is_eq7_minus_the_teacher_entropy(outs):
    t_out, s_out = outs
    enc = compare.compare_encoders(t_out, s_out)
    assert enc.kl.shape == (t_out.ctc_logp.size(0),) and bool((enc.kl >= 0).all())
    p = t_out.ctc_logp
    entropy = -(p.exp() * p).sum()
    eq7 = enc_frame_kd(s_out.ctc_logp[None], p[None], torch.tensor([p.size(0)]))
    assert (enc.kl.sum() + entropy).item() == pytest.approx(eq7.item(), rel=1e-4)
    assert compare.compare_encoders(t_out, t_out).mean_kl == pytest.approx(0.0, abs=1e-6)


def test_decoder_kl_is_eq11_minus_the_teacher_entropy(dec):
    mask = torch.tensor(dec.masked)
    assert bool(torch.isnan(dec.kl[~mask]).all()) and bool((dec.kl[mask] >= 0).all())
    probs = teacher_token_dist(dec.teacher_logp)  # (L, V), already restricted: unchanged
    assert torch.allclose(probs, dec.teacher_logp.exp(), atol=1e-6)
    entropy = -(probs * dec.teacher_logp.masked_fill(probs == 0, 0)).sum(-1)  # (L,)
    eq11 = dec_frame_kd(dec.student_logp[None], probs[None], mask[None])
    assert (dec.mean_kl + entropy[mask].mean()).item() == pytest.approx(eq11.item(), rel=1e-4)
    t_top, s_top = dec.top_k(0, 3)
    assert [t for t, _ in t_top] == dec.teacher_logp[0].topk(3).indices.tolist()
    assert s_top[0][1] == pytest.approx(dec.student_logp[0].exp().max().item())


def test_mask_positions_are_fixed_per_seed():
    a = compare.mask_positions(20, 0.5, seed=0)
    assert a == compare.mask_positions(20, 0.5, seed=0) and sum(a) == 10
    assert a != compare.mask_positions(20, 0.5, seed=1)
    assert sum(compare.mask_positions(3, 0.1)) == 1 and compare.mask_positions(0) == []


# ------------------------------------------------------------------ check-set means and the verdict


def test_distance_rows_and_verdict(teacher, student, utt):
    ljca = load_model("mini-en/student-same-ljca")
    rows = compare.distance_rows(teacher, [ljca, student], {"one": [utt]})
    assert [r["student"] for r in rows] == ["student-same-ljca", "student-same-skd"]
    assert [r["distilled"] for r in rows] == [False, True]
    d = compare.student_distance(teacher, student, [utt])
    assert rows[1]["eq 7 KL / frame"] == pytest.approx(d.enc_kl, abs=1e-4)
    assert rows[1]["eq 11 KL / masked pos."] == pytest.approx(d.dec_kl, abs=1e-4)
    lines = compare.kd_verdict(rows)
    assert len(lines) == 1 and lines[0].startswith("one, student-same: eq 7: KD ")
    cols = compare.kl_columns(rows, "one")
    assert cols["names"] == ["student-same-ljca", "student-same-skd"] and cols["distilled"] == [False, True]


def test_kd_verdict_by_hand():
    rows = [{"set": "s", "student": "x-ljca", "distilled": False, "eq 7 KL / frame": 1.0,
             "eq 11 KL / masked pos.": 1.0},
            {"set": "s", "student": "x-skd", "distilled": True, "eq 7 KL / frame": 0.5,
             "eq 11 KL / masked pos.": 1.5}]
    assert compare.kd_verdict(rows) == ["s, x: eq 7: KD closer (0.500 vs 1.000, -50 %); "
                                        "eq 11: KD farther (1.500 vs 1.000, +50 %)"]


# ------------------------------------------------------------------ figures


def test_ctc_posteriors_share_rows_and_time(teacher, outs):
    t_out, s_out = outs
    vocab = traces.vocabulary(teacher)
    fig = vp.ctc_posteriors([("teacher", t_out.ctc_logp), ("student", s_out.ctc_logp)], vocab, t_out.frame_s)
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 2
    rows = vp.shown_rows([t_out.ctc_logp, s_out.ctc_logp], 0.05, keep=(0,))
    for ax in heat:
        assert [t.get_text() for t in ax.get_yticklabels()] == [vocab[r] for r in rows]
        assert ax.images[0].get_array().shape == (len(rows), t_out.ctc_logp.size(0))
    assert "∅" in [t.get_text() for t in heat[0].get_yticklabels()]


def test_frame_kl_plot_draws_each_curve(outs):
    kl = compare.compare_encoders(*outs).kl
    ax = vp.frame_kl_plot({"a": kl, "b": kl * 2}, 0.04).axes[0]
    assert len(ax.lines) == 2 and list(ax.lines[1].get_ydata()) == pytest.approx((kl * 2).tolist())


def test_decoder_posteriors_bars_are_the_kl_at_masks(teacher, dec):
    vocab = traces.vocabulary(teacher)
    fig = vp.decoder_posteriors(dec.teacher_logp, dec.student_logp, dec.masked, dec.tokens, vocab, dec.kl,
                                position=1)
    ax_k = fig.axes[2]
    heights = [p.get_height() for p in ax_k.containers[0]]
    want = [float(v) if m else 0.0 for v, m in zip(dec.kl, dec.masked, strict=True)]
    assert heights == pytest.approx(want, abs=1e-6)
    assert [t.get_text() for t in ax_k.get_xticklabels()] == [
        "■" if m else vocab[t] for t, m in zip(dec.tokens, dec.masked, strict=True)]


def test_topk_and_position_view_mark_the_reference(teacher, dec):
    vocab = traces.vocabulary(teacher)
    pos = dec.masked.index(True)
    t_top, s_top = dec.top_k(pos, 4)
    fig = vp.topk_plot(t_top, s_top, vocab, reference=dec.tokens[pos])
    ax = fig.axes[0]
    assert [p.get_width() for p in ax.patches] == pytest.approx([p for _, p in t_top])
    green = [to_hex(p.get_facecolor()) == to_hex("C2") for p in ax.patches]
    assert green == [t == dec.tokens[pos] for t, _ in t_top]
    view = vp.position_view(dec.kl, dec.masked, dec.tokens, vocab, pos, t_top, s_top)
    strip = view.axes[0]
    span = strip.patches[0].get_x()  # the green band over the chosen position
    assert span == pytest.approx(pos - 0.5) and "masked" in strip.get_title()


def test_student_kl_bars_heights_and_colours():
    fig = vp.student_kl_bars(["a", "b"], [0.8, 0.2], [1.0, 1.1], [False, True])
    enc, dcd = fig.axes
    assert [p.get_height() for p in enc.patches] == [0.8, 0.2]
    assert [p.get_height() for p in dcd.patches] == [1.0, 1.1]
    assert [to_hex(p.get_facecolor()) for p in enc.patches] == [to_hex("C0"), to_hex("C1")]
