"""Inter-KD (Yoon et al. 2022) and final-head CTC KD: the softened frame KL by hand, the head combination,
the checks, and one training step of a tiny CTC student with intermediate heads under a tiny AR teacher."""

import math
from types import SimpleNamespace

import kd_batches
import pytest
import torch

from kdlab.config import ConfigError
from kdlab.kd.config import KDConfig
from kdlab.kd.families import build_family_distiller
from kdlab.kd.inter import InterKD, combine_heads, soft_kl
from kdlab.models import ModelConfig, build_model
from kdlab.training.loop import compute_loss

LN2 = math.log(2.0)
V = 12


def logp(rows: list[list[float]]) -> torch.Tensor:
    """Probabilities of one utterance, (T', V) → log-probs (1, T', V)."""
    return torch.tensor(rows).log().unsqueeze(0)


# ----------------------------------------------------------------------------- the KL by hand


def test_kl_is_zero_when_student_equals_teacher():
    p = torch.randn(2, 5, 7).log_softmax(-1)
    for tau in (1.0, 2.0):
        kl = soft_kl(p.clone(), p, torch.tensor([5, 3]), temperature=tau)
        assert abs(float(kl)) < 1e-5


def test_kl_two_frames_three_classes_by_hand():
    teacher = logp([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    student = logp([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]])
    # frame 1: 0.5 ln(0.5/0.25) + 0.25 ln(0.25/0.5) + 0 = 0.25 ln 2; frame 2 likewise
    lens = torch.tensor([2])
    assert float(soft_kl(student, teacher, lens)) == pytest.approx(0.5 * LN2, rel=1e-6)
    assert float(soft_kl(student, teacher, lens, norm="frame")) == pytest.approx(0.25 * LN2, rel=1e-6)


def test_temperature_softens_both_and_scales_by_tau_squared():
    # at τ = 2, softmax(log p / 2) ∝ sqrt(p): (4, 1, 1)/6 → (2, 1, 1)/4, the frame of the previous test
    teacher = logp([[4 / 6, 1 / 6, 1 / 6]])
    student = logp([[1 / 6, 4 / 6, 1 / 6]])
    kl = soft_kl(student, teacher, torch.tensor([1]), temperature=2.0)
    assert float(kl) == pytest.approx(4 * 0.25 * LN2, rel=1e-5)  # τ² · KL(softened)


def test_padding_frames_are_ignored():
    teacher = logp([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]).repeat(2, 1, 1)  # (2, 2, 3)
    student = logp([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]]).repeat(2, 1, 1)
    student[1, 1] = torch.tensor([1e-4, 1e-4, 1.0 - 2e-4]).log()  # utterance 2's padding: far from teacher
    kl = soft_kl(student, teacher, torch.tensor([2, 1]))
    assert float(kl) == pytest.approx((0.5 * LN2 + 0.25 * LN2) / 2, rel=1e-6)  # Σ_t, mean over 2 utts


def test_teacher_gets_no_gradient_and_student_does():
    teacher = torch.randn(1, 3, 4).log_softmax(-1).requires_grad_()
    student = torch.randn(1, 3, 4).requires_grad_()
    soft_kl(student.log_softmax(-1), teacher, torch.tensor([3])).backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0


def test_combine_heads_is_interctc_weighting():
    final, inter = torch.tensor(1.0), [torch.tensor(2.0), torch.tensor(4.0)]
    assert float(combine_heads(final, inter, 0.3)) == pytest.approx(0.7 * 1.0 + 0.3 * 3.0)
    assert float(combine_heads(final, [], 0.3)) == 1.0


# ----------------------------------------------------------------------------- the distiller on fixed tensors


class FixedTeacher(torch.nn.Module):
    """A teacher whose CTC posteriors are given: encode() passes them through as the 'encoder output'."""

    def __init__(self, ctc_logp: torch.Tensor) -> None:
        super().__init__()
        self.out = ctc_logp  # (B, T', V)

    def encode(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.out, torch.full((self.out.size(0),), self.out.size(1))

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        return enc


def fixed_case(method: str, weight: float = 0.5, inter_weight: float = 0.3):
    teacher_lp = logp([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    final = logp([[0.25, 0.5, 0.25], [0.5, 0.25, 0.25]])  # KD_final = 0.5 ln 2 (hand case above)
    head = logp([[0.25, 0.5, 0.25], [0.25, 0.25, 0.5]])  # KD_inter = 0.25 ln 2 (frame 2 equal)
    s_out = {"ctc_logp": final, "inter_logp": [head], "enc_lens": torch.tensor([2])}
    batch = {"feats": torch.zeros(1, 11, 80), "feat_lens": torch.tensor([11])}
    student = SimpleNamespace(cfg=SimpleNamespace(inter_ctc_weight=inter_weight))
    kd = InterKD(FixedTeacher(teacher_lp), KDConfig(method=method, weight=weight))
    return kd(student, batch, s_out)


def test_final_only_kd_ignores_the_intermediate_heads():
    loss, metrics = fixed_case("ctc")
    assert set(metrics) == {"kd", "kd_final"}
    assert float(loss) == pytest.approx(0.5 * 0.5 * LN2, rel=1e-5)  # λ · KD_final
    assert metrics["kd"] == pytest.approx(float(loss))


def test_inter_kd_adds_the_intermediate_heads():
    loss, metrics = fixed_case("inter")
    assert metrics["kd_final"] == pytest.approx(0.5 * LN2, rel=1e-5)
    assert metrics["kd_inter"] == pytest.approx(0.25 * LN2, rel=1e-5)
    expected = 0.5 * (0.7 * 0.5 * LN2 + 0.3 * 0.25 * LN2)  # λ·[(1 − w)·KD_final + w·KD_inter]
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_user_mistakes_raise_config_errors():
    teacher = FixedTeacher(torch.randn(1, 2, 3).log_softmax(-1))
    batch = {"feats": torch.zeros(1, 11, 80), "feat_lens": torch.tensor([11])}
    student = SimpleNamespace(cfg=SimpleNamespace(inter_ctc_weight=0.3))
    no_heads = {"ctc_logp": torch.randn(1, 2, 3), "inter_logp": [], "enc_lens": torch.tensor([2])}
    with pytest.raises(ConfigError, match="inter_ctc_layers"):
        InterKD(teacher, KDConfig(method="inter"))(student, batch, no_heads)
    other_vocab = {"ctc_logp": torch.randn(1, 2, 5), "enc_lens": torch.tensor([2])}
    with pytest.raises(ConfigError, match="vocabulary"):
        InterKD(teacher, KDConfig(method="ctc"))(student, batch, other_vocab)
    other_rate = {"ctc_logp": torch.randn(1, 2, 3), "enc_lens": torch.tensor([1])}
    with pytest.raises(ConfigError, match="frame counts"):
        InterKD(teacher, KDConfig(method="ctc"))(student, batch, other_rate)
    with pytest.raises(ConfigError, match="CTC head"):
        InterKD(teacher, KDConfig(method="ctc"))(student, batch, {"enc_lens": torch.tensor([2])})
    with pytest.raises(ConfigError, match="InterKD handles"):
        InterKD(teacher, KDConfig(method="layer"))


# ----------------------------------------------------------------------------- end to end on tiny models


def tiny_model(kind: str, seed: int, **extra) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=16, heads=2, ffn_dim=32, enc_blocks=2, dec_blocks=1, cnn_kernel=3, dropout=0.0,
                      pos_dropout=0.0, **extra)
    return build_model(cfg, V, kind)


def tiny_batch() -> dict:
    return kd_batches.tiny_batch(V)


@pytest.mark.parametrize("method", ["ctc", "inter"])
def test_one_training_step_reaches_the_intermediate_head_only_with_inter(method):
    teacher = tiny_model("ar", seed=0)
    student = tiny_model("ctc", seed=1, inter_ctc_layers=[1])
    kd = build_family_distiller(KDConfig(enabled=True, teacher="t.pt", method=method, weight=1.0,
                                         temperature=2.0), teacher, None)
    assert isinstance(kd, InterKD)
    batch = tiny_batch()
    loss, metrics = compute_loss(student, batch, kd)
    assert {"loss_ctc", "loss_inter", "loss_kd", "kd", "kd_final"} <= set(metrics)
    assert ("kd_inter" in metrics) == (method == "inter")
    assert metrics["loss"] == pytest.approx(metrics["loss_jca"] + metrics["loss_kd"], rel=1e-5)

    out = student(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
    kd(student, batch, out)[0].backward()  # the KD term alone
    block1 = student.encoder.blocks[0].parameters().__next__()
    assert student.ctc.ctc_lo.weight.grad.abs().sum() > 0 and block1.grad.abs().sum() > 0
    inter_grad = student.inter_norm.weight.grad
    assert (inter_grad is not None and inter_grad.abs().sum() > 0) == (method == "inter")
    assert all(p.grad is None for p in teacher.parameters())

    student.zero_grad()
    before = [p.detach().clone() for p in student.parameters()]
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    compute_loss(student, batch, kd)[0].backward()  # the full objective: one optimiser step
    assert student.inter_norm.weight.grad.abs().sum() > 0
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, student.parameters(), strict=True))
