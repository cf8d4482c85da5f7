"""Eq 7–13 distillation losses on tiny hand-computed cases."""

import math

import pytest
import torch
import yaml

from kdlab.kd.config import KDConfig
from kdlab.kd.losses import (
    dec_frame_kd,
    dec_seq_kd,
    enc_frame_kd,
    enc_seq_kd,
    kd_objective,
    nbest_weights,
    teacher_token_dist,
)
from kdlab.models.ctc import ctc_loss_per_utt


def logp_of(rows):
    return torch.tensor(rows, dtype=torch.float64).log()


# ----------------------------------------------------------------------------- eq 7


def test_enc_frame_kd_hand_case_excludes_padding():
    # utterance 0: 2 valid frames; utterance 1: 1 valid frame; the rest is padding filled with junk
    p = logp_of([[[0.5, 0.5], [0.9, 0.1], [0.3, 0.7]], [[1.0, 1e-30], [0.2, 0.8], [0.2, 0.8]]])
    q = logp_of([[[0.25, 0.75], [0.5, 0.5], [0.01, 0.99]], [[0.5, 0.5], [0.9, 0.1], [0.9, 0.1]]])
    lens = torch.tensor([2, 1])
    ce00 = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    ce01 = -(0.9 * math.log(0.5) + 0.1 * math.log(0.5))
    ce10 = -(1.0 * math.log(0.5))
    got = enc_frame_kd(q, p, lens)
    assert got.item() == pytest.approx((ce00 + ce01 + ce10) / 2, rel=1e-9)
    got_frame = enc_frame_kd(q, p, lens, norm="frame")
    assert got_frame.item() == pytest.approx((ce00 + ce01 + ce10) / 3, rel=1e-9)
    with pytest.raises(ValueError, match="normalisation"):
        enc_frame_kd(q, p, lens, norm="token")


def test_enc_frame_kd_gradient_is_q_minus_p_and_teacher_frozen():
    torch.manual_seed(0)
    z = torch.randn(1, 4, 5, requires_grad=True)
    t_logits = torch.randn(1, 4, 5, requires_grad=True)
    loss = enc_frame_kd(z.log_softmax(-1), t_logits.log_softmax(-1), torch.tensor([3]))
    loss.backward()
    expected = z.softmax(-1) - t_logits.softmax(-1)
    assert torch.allclose(z.grad[0, :3], expected[0, :3].detach(), atol=1e-6)
    assert torch.all(z.grad[0, 3] == 0)  # padded frame
    assert t_logits.grad is None


def test_enc_frame_kd_mismatch_errors():
    q = torch.zeros(2, 5, 7).log_softmax(-1)
    with pytest.raises(ValueError, match="frame rate"):
        enc_frame_kd(q, torch.zeros(2, 4, 7).log_softmax(-1), torch.tensor([4, 4]))
    with pytest.raises(ValueError, match="vocabulary size differs"):
        enc_frame_kd(q, torch.zeros(2, 5, 6).log_softmax(-1), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="batch size"):
        enc_frame_kd(q, torch.zeros(1, 5, 7).log_softmax(-1), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="exceeds"):
        enc_frame_kd(q, q, torch.tensor([6, 5]))


# ----------------------------------------------------------------------------- eq 8–9


def test_nbest_weights_softmax_per_utterance():
    scores = torch.tensor([math.log(1.0), math.log(3.0), -1000.0, -1000.0 - math.log(4.0), -7.0],
                          dtype=torch.float64)
    utt = torch.tensor([0, 0, 1, 1, 2])
    w = nbest_weights(scores, utt, batch_size=3)
    assert w.tolist() == pytest.approx([0.25, 0.75, 0.8, 0.2, 1.0], rel=1e-6)
    with pytest.raises(ValueError, match="finite"):
        nbest_weights(torch.tensor([float("-inf")]), torch.tensor([0]), 1)


def test_enc_seq_kd_one_frame_hand_case():
    # T' = 1, V = 3: Q([1]) = q[1], Q([]) = q[blank], Q([2]) = q[2]
    logp = logp_of([[[0.2, 0.5, 0.3]]])
    hyps = torch.tensor([[1], [-1], [2]])
    hyp_lens = torch.tensor([1, 0, 1])
    utt = torch.zeros(3, dtype=torch.long)
    w = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    got = enc_seq_kd(logp, torch.tensor([1]), hyps, hyp_lens, utt, w, ctc_loss_per_utt)
    expected = -(0.5 * math.log(0.5) + 0.25 * math.log(0.2) + 0.25 * math.log(0.3))
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_enc_seq_kd_two_frames_and_infeasible_hypothesis():
    q0, q1 = [0.1, 0.6, 0.3], [0.4, 0.5, 0.1]
    logp = logp_of([[q0, q1], [q1, [0.3, 0.3, 0.4]]])  # utterance 1 has one valid frame
    # utt 0: "1" via (1,1), (0,1), (1,0); "1 1" needs 3 frames → infeasible, left out
    # utt 1: "2" on its single frame
    hyps = torch.tensor([[1, -1], [1, 1], [2, -1]])
    hyp_lens = torch.tensor([1, 2, 1])
    utt = torch.tensor([0, 0, 1])
    w = torch.tensor([0.9, 0.1, 1.0], dtype=torch.float64)
    got = enc_seq_kd(logp, torch.tensor([2, 1]), hyps, hyp_lens, utt, w, ctc_loss_per_utt)
    p_one = q0[1] * q1[1] + q0[0] * q1[1] + q0[1] * q1[0]
    expected = (-0.9 * math.log(p_one) - 1.0 * math.log(q1[2])) / 2
    assert got.item() == pytest.approx(expected, rel=1e-9)


# ----------------------------------------------------------------------------- eq 11–12


def test_teacher_token_dist_drops_special_classes():
    probs = teacher_token_dist(torch.zeros(1, 1, 6))
    assert probs[0, 0].tolist() == pytest.approx([0, 1 / 3, 0, 0, 1 / 3, 1 / 3])
    logits = torch.tensor([[[5.0, 0.0, 9.0, 9.0, math.log(3.0), math.log(6.0)]]])
    assert teacher_token_dist(logits)[0, 0].tolist() == pytest.approx([0, 0.1, 0, 0, 0.3, 0.6])


def test_dec_frame_kd_masked_positions_only():
    # B=2, L=3, V=5; utterance 1 has no masked position and must not dilute the mean
    q_rows = [[0.1, 0.2, 0.3, 0.1, 0.3], [0.2, 0.2, 0.2, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1, 0.7]]
    logits = logp_of([q_rows, q_rows])  # log-probs are valid logits
    p_rows = [[0, 0.5, 0, 0, 0.5], [0, 1.0, 0, 0, 0], [0, 0.2, 0, 0, 0.8]]
    teacher = torch.tensor([p_rows, p_rows], dtype=torch.float64)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    ce0 = -(0.5 * math.log(0.2) + 0.5 * math.log(0.3))
    ce2 = -(0.2 * math.log(0.05) + 0.8 * math.log(0.7))
    got = dec_frame_kd(logits, teacher, mask)
    assert got.item() == pytest.approx((ce0 + ce2) / 2, rel=1e-9)
    with pytest.raises(ValueError, match="vocabulary"):
        dec_frame_kd(logits, teacher[..., :4], mask)
    with pytest.raises(ValueError, match="mask"):
        dec_frame_kd(logits, teacher, mask[:, :2])


def test_dec_seq_kd_weighted_by_p_prime_and_mask_count():
    q_rows = [[0.1, 0.2, 0.3, 0.1, 0.3], [0.2, 0.2, 0.2, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1, 0.7]]
    logits = logp_of([q_rows, q_rows, q_rows])  # (M=3, L=3, V=5)
    hyps = torch.tensor([[4, 1, 4], [1, 4, -1], [4, -1, -1]])
    mask = torch.tensor([[True, True, False], [False, True, False], [True, False, False]])
    w = torch.tensor([0.7, 0.3, 1.0], dtype=torch.float64)
    h0 = -(math.log(0.3) + math.log(0.2)) / 2
    h1 = -math.log(0.2)
    h2 = -math.log(0.3)
    got = dec_seq_kd(logits, hyps, mask, w, batch_size=2)
    assert got.item() == pytest.approx((0.7 * h0 + 0.3 * h1 + 1.0 * h2) / 2, rel=1e-9)


# ----------------------------------------------------------------------------- eq 13


def test_kd_objective_composes_eq13_with_stage_presets():
    terms = {"enc_f": torch.tensor(1.0), "enc_s": torch.tensor(2.0),
             "dec_f": torch.tensor(3.0), "dec_s": torch.tensor(4.0)}
    s1 = KDConfig.stage1("t.pt")
    got1 = kd_objective({"enc_f": terms["enc_f"], "dec_f": terms["dec_f"]},
                        s1.beta_f, s1.beta_s, s1.gamma_enc, s1.gamma_dec)
    assert got1.item() == pytest.approx(0.5 * 1.0 + 0.3 * 3.0)
    s2 = KDConfig.stage2("t.pt")
    got2 = kd_objective(terms, s2.beta_f, s2.beta_s, s2.gamma_enc, s2.gamma_dec)
    assert got2.item() == pytest.approx(0.5 * (1.0 + 2.0) + 0.5 * (3.0 + 4.0))
    with pytest.raises(ValueError, match="enc_s"):
        kd_objective({"enc_f": terms["enc_f"], "dec_f": terms["dec_f"]}, 1.0, 1.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="unknown"):
        kd_objective({"enc_x": terms["enc_f"]}, 1.0, 0.0, 0.5, 0.5)


def test_kd_config_round_trip_and_validation():
    cfg = KDConfig.stage2("exp/teacher/avg.pt", nbest=4, beam=6)
    assert KDConfig.from_dict(cfg.to_dict()) == cfg
    assert KDConfig.from_dict(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg
    assert (cfg.beta_f, cfg.beta_s, cfg.gamma_enc, cfg.gamma_dec) == (1.0, 1.0, 0.5, 0.5)
    assert cfg.uses_nbest and not KDConfig.stage1("t.pt").uses_nbest
    s1 = KDConfig.stage1("t.pt")
    assert (s1.beta_f, s1.beta_s, s1.gamma_enc, s1.gamma_dec, s1.nbest, s1.beam, s1.ctc_weight) == (
        1.0, 0.0, 0.5, 0.3, 10, 10, 0.3)
    with pytest.raises(ValueError, match="gamma_dec"):
        KDConfig(gamma_dec=-1)
    with pytest.raises(ValueError, match="unknown KD config key"):
        KDConfig.from_dict({"betaf": 1.0})
    with pytest.raises(ValueError, match="teacher"):
        KDConfig(enabled=True)
    with pytest.raises(ValueError, match="nbest"):
        KDConfig(nbest=12, beam=10)
