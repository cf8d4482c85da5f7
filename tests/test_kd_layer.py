"""Layer-to-layer KD + APC (Shim et al. 2023): the distance, layer and APC terms by hand, the checks, and one
training step of a tiny streaming CTC student with aux branches under a tiny AR teacher."""

import math

import kd_batches
import pytest
import torch

from kdlab.config import ConfigError
from kdlab.kd.config import KDConfig
from kdlab.kd.families import build_family_distiller
from kdlab.kd.layer import LayerKD, apc_loss, frame_distance, layer_loss
from kdlab.models import ModelConfig, build_model
from kdlab.training.loop import compute_loss

LN2 = math.log(2.0)
COS1 = math.log1p(math.exp(-1.0))  # −log σ(1): the cosine term of parallel vectors
V = 12


def rows(*frames: list[float]) -> torch.Tensor:
    """One utterance's frames -> (1, T, D)."""
    return torch.tensor(frames).unsqueeze(0)


# ----------------------------------------------------------------------------- the terms by hand


def test_frame_distance_l1_plus_cosine_by_hand():
    x = rows([1.0, 0.0], [2.0, 0.0], [1.0, 1.0])
    y = rows([0.0, 1.0], [2.0, 0.0], [-1.0, -1.0])
    # orthogonal: L1 (1 + 1)/2 + ln 2; equal: 0 + −log σ(1); opposite: (2 + 2)/2 − log σ(−1)
    expected = [1.0 + LN2, COS1, 2.0 + math.log1p(math.e)]
    assert frame_distance(x, y)[0].tolist() == pytest.approx(expected, rel=1e-6)


def test_layer_loss_excludes_padding_and_normalises():
    s = torch.cat([rows([1.0, 0.0], [2.0, 0.0]), rows([1.0, 0.0], [5.0, 5.0])])  # (2, 2, 2)
    t = torch.cat([rows([0.0, 1.0], [2.0, 0.0]), rows([1.0, 0.0], [-9.0, 0.0])])  # utt 2 frame 2 is padding
    lens = torch.tensor([2, 1])
    total = (1.0 + LN2) + COS1 + COS1  # three valid frames
    assert float(layer_loss(s, t, lens)) == pytest.approx(total / 2, rel=1e-6)  # Σ_t, mean over utterances
    assert float(layer_loss(s, t, lens, "frame")) == pytest.approx(total / 3, rel=1e-6)


def test_apc_predicts_the_target_n_frames_ahead():
    target = rows([0.0, 1.0], [1.0, 0.0], [3.0, 0.0], [0.0, 2.0])  # (1, 4, 2)
    pred = rows([1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [7.0, 7.0])  # pred[t] = target[t + 1] for t < 3
    lens = torch.tensor([4])
    assert float(apc_loss(pred, target, lens, shift=1)) == pytest.approx(3 * COS1, rel=1e-6)
    # shift 2: pred[0] vs target[2] (equal direction, L1 (2+0)/2), pred[1] vs target[3] (orthogonal)
    expected = (1.0 + COS1) + ((3.0 + 2.0) / 2 + LN2)
    assert float(apc_loss(pred, target, lens, shift=2)) == pytest.approx(expected, rel=1e-6)
    # frames whose target lies beyond the utterance's length are not counted
    assert float(apc_loss(pred, target, torch.tensor([2]), shift=1)) == pytest.approx(COS1, rel=1e-6)
    assert float(apc_loss(pred, target, lens, shift=4)) == 0.0


def test_targets_get_no_gradient():
    s, t = torch.randn(1, 3, 4, requires_grad=True), torch.randn(1, 3, 4, requires_grad=True)
    (layer_loss(s, t, torch.tensor([3])) + apc_loss(s, t, torch.tensor([3]), 1)).backward()
    assert t.grad is None and s.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- the distiller, tiny models


def tiny_model(kind: str, seed: int, **extra) -> torch.nn.Module:
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=16, heads=2, ffn_dim=32, enc_blocks=2, dec_blocks=1, cnn_kernel=3, dropout=0.0,
                      pos_dropout=0.0, **extra)
    return build_model(cfg, V, kind)


def tiny_student(**extra) -> torch.nn.Module:
    """A streaming CTC student (d 8, chunks of 2) with aux branches after both blocks, teacher width 16."""
    torch.manual_seed(1)
    cfg = ModelConfig(d_model=8, heads=2, ffn_dim=16, enc_blocks=2, cnn_kernel=3, dropout=0.0, pos_dropout=0.0,
                      chunk_size=2, **{"aux_layers": [1, 2], "aux_out_dim": 16, **extra})
    return build_model(cfg, V, "ctc")


def tiny_batch() -> dict:
    return kd_batches.tiny_batch(V)


def layer_cfg(**extra) -> KDConfig:
    return KDConfig(**{"enabled": True, "teacher": "t.pt", "method": "layer", "teacher_layers": [1, 2],
                       **extra})


def test_distiller_combines_the_weighted_terms():
    teacher, student, batch = tiny_model("ar", seed=0), tiny_student(), tiny_batch()
    cfg = layer_cfg(weight=0.5, layer_weight=2.0, apc_weight=3.0, apc_shift=2, token_weight=0.25)
    kd = LayerKD(teacher, cfg)
    out = student(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
    loss, metrics = kd(student, batch, out)
    with torch.no_grad():
        enc, lens, hidden = teacher.encoder.forward_hidden(batch["feats"], batch["feat_lens"])
        layer = (layer_loss(out["aux"][0], hidden[0], lens) + layer_loss(out["aux"][1], hidden[1], lens)) / 2
        apc = (apc_loss(out["apc"][0], hidden[0], lens, 2) + apc_loss(out["apc"][1], hidden[1], lens, 2)) / 2
    assert metrics["kd_layer"] == pytest.approx(float(layer), rel=1e-5)
    assert metrics["kd_apc"] == pytest.approx(float(apc), rel=1e-5)
    expected = 0.5 * (2.0 * metrics["kd_layer"] + 3.0 * metrics["kd_apc"] + 0.25 * metrics["kd_token"])
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    aux_kd = LayerKD(teacher, cfg, apc_target="aux")  # the self-distillation reading
    with torch.no_grad():
        own = (apc_loss(out["apc"][0], out["aux"][0], lens, 2) + apc_loss(out["apc"][1], out["aux"][1], lens, 2))
    assert aux_kd(student, batch, out)[1]["kd_apc"] == pytest.approx(float(own) / 2, rel=1e-5)


def test_one_training_step_reaches_the_streaming_blocks_through_aux_and_apc():
    teacher, student, batch = tiny_model("ar", seed=0), tiny_student(), tiny_batch()
    kd = build_family_distiller(layer_cfg(), teacher, None)
    assert isinstance(kd, LayerKD)
    loss, metrics = compute_loss(student, batch, kd)
    assert {"loss_ctc", "loss_kd", "kd", "kd_layer", "kd_apc"} <= set(metrics) and "kd_token" not in metrics
    assert metrics["loss"] == pytest.approx(metrics["loss_jca"] + metrics["loss_kd"], rel=1e-5)

    out = student(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
    kd(student, batch, out)[0].backward()  # the KD term alone
    for module in (student.aux[0], student.aux[1], student.apc[0], student.encoder.blocks[0]):
        assert sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None) > 0
    assert student.ctc.ctc_lo.weight.grad is None  # no token term: the CTC head gets nothing from KD
    assert all(p.grad is None for p in teacher.parameters())

    student.zero_grad()
    before = [p.detach().clone() for p in student.parameters()]
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    compute_loss(student, batch, kd)[0].backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, student.parameters(), strict=True))


def test_user_mistakes_raise_config_errors():
    teacher, batch = tiny_model("ar", seed=0), tiny_batch()

    def run(student: torch.nn.Module, cfg: KDConfig) -> None:
        out = student(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
        LayerKD(teacher, cfg)(student, batch, out)

    with pytest.raises(ConfigError, match="aux_layers"):
        run(tiny_model("ctc", seed=1, chunk_size=2), layer_cfg())
    with pytest.raises(ConfigError, match="aux_out_dim: 16"):
        run(tiny_student(aux_out_dim=0), layer_cfg())
    with pytest.raises(ConfigError, match="one teacher block per"):
        run(tiny_student(), layer_cfg(teacher_layers=[2]))
    with pytest.raises(ConfigError, match="teacher blocks in 1..2"):
        LayerKD(teacher, layer_cfg(teacher_layers=[1, 3]))
    with pytest.raises(ConfigError, match="teacher blocks"):
        LayerKD(teacher, layer_cfg(teacher_layers=[]))
    with pytest.raises(ConfigError, match="apc_target"):
        LayerKD(teacher, layer_cfg(), apc_target="future")
    with pytest.raises(ConfigError, match="handles 'layer'"):
        LayerKD(teacher, layer_cfg(method="ctc"))
