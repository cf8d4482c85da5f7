"""AR and Mask-CTC models: losses by hand, masking, forward contract, training signal, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from kdlab.models import ARModel, MaskCTCModel, ModelConfig, build_model, ctc_loss, ctc_loss_per_utt
from kdlab.models.ar import add_sos_eos
from kdlab.models.losses import label_smoothing_loss, token_accuracy
from kdlab.models.maskctc import sample_mlm_mask
from kdlab.tokens import IGNORE_ID, MASK, SOS_EOS

V = 12
TINY = ModelConfig(d_model=32, heads=2, ffn_dim=64, enc_blocks=2, dec_blocks=1, cnn_kernel=5)


def tiny_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "feats": torch.randn(2, 60, 80, generator=g),
        "feat_lens": torch.tensor([60, 45]),
        "tokens": torch.tensor([[4, 5, 6, 7, 8], [9, 10, 11, IGNORE_ID, IGNORE_ID]]),
        "token_lens": torch.tensor([5, 3]),
    }


def run(model, batch, seed: int = 0) -> dict:
    args = (batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
    if isinstance(model, MaskCTCModel):
        return model(*args, generator=torch.Generator().manual_seed(seed))
    return model(*args)


def test_add_sos_eos_by_hand() -> None:
    ys_in, ys_out = add_sos_eos(torch.tensor([[4, 5, 6], [7, -1, -1]]), torch.tensor([3, 1]))
    assert ys_in.tolist() == [[SOS_EOS, 4, 5, 6], [SOS_EOS, 7, -1, -1]]
    assert ys_out.tolist() == [[4, 5, 6, SOS_EOS], [7, SOS_EOS, -1, -1]]


def test_label_smoothing_loss_by_hand() -> None:
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]])  # (1, 2, 3)
    targets = torch.tensor([[2, IGNORE_ID]])
    logp = torch.log_softmax(logits[0, 0], -1)
    # smoothing 0.2 over V-1 = 2 others: target dist (0.1, 0.1, 0.8)
    t = torch.tensor([0.1, 0.1, 0.8])
    expected = float((t * (t.log() - logp)).sum())
    assert label_smoothing_loss(logits, targets, 0.2).item() == pytest.approx(expected, abs=1e-6)
    ce = torch.nn.functional.cross_entropy(logits[0, :1], targets[0, :1], reduction="sum")
    assert label_smoothing_loss(logits, targets, 0.0).item() == pytest.approx(ce.item(), abs=1e-6)
    assert token_accuracy(logits, targets) == 1.0
    assert token_accuracy(logits, torch.tensor([[0, IGNORE_ID]])) == 0.0


def test_ctc_loss_by_hand_and_reduction() -> None:
    p = torch.tensor(
        [
            [[0.5, 0.2, 0.3], [0.4, 0.5, 0.1]],  # utt 0: 2 frames, target [1]
            [[0.1, 0.6, 0.3], [0.0, 0.0, 0.0]],
        ]
    )  # utt 1: 1 frame, target [2]
    logp = p.clamp_min(1e-30).log()
    targets, target_lens, lens = torch.tensor([[1], [2]]), torch.tensor([1, 1]), torch.tensor([2, 1])
    nll = ctc_loss_per_utt(logp, lens, targets, target_lens)
    # utt 0: paths (1,1), (1,b), (b,1) -> 0.2*0.5 + 0.2*0.4 + 0.5*0.5 = 0.43; utt 1: 0.3
    assert nll.tolist() == pytest.approx([-math.log(0.43), -math.log(0.3)], abs=1e-5)
    assert ctc_loss(logp, lens, targets, target_lens).item() == pytest.approx(float(nll.sum() / 2), abs=1e-6)


def test_ctc_rejects_bad_items_by_index() -> None:
    logp = torch.randn(2, 3, 5).log_softmax(-1)
    with pytest.raises(ValueError, match=r"batch items \[1\].*too short"):
        ctc_loss_per_utt(
            logp, torch.tensor([3, 2]), torch.tensor([[4, 4], [4, 4]]), torch.tensor([2, 2])
        )  # 4 _ 4: 3 frames
    with pytest.raises(ValueError, match=r"batch items \[0\]"):
        ctc_loss_per_utt(logp, torch.tensor([3, 3]), torch.tensor([[0, 4], [4, 4]]), torch.tensor([2, 1]))


def test_masking_is_without_replacement() -> None:
    lens = torch.tensor([1, 2, 5, 9, 0])
    g = torch.Generator().manual_seed(0)
    seen_k: dict[int, set[int]] = {n: set() for n in lens.tolist()}
    for _ in range(300):
        mask = sample_mlm_mask(lens, 11, g)  # (B, 11)
        assert mask.dtype == torch.bool and mask.shape == (5, 11)
        for b, n in enumerate(lens.tolist()):
            k = int(mask[b].sum())
            assert not mask[b, n:].any()  # never in the padding
            assert (1 <= k <= n) if n else k == 0  # k distinct positions, k in 1..n
            seen_k[n].add(k)
    assert seen_k[9] == set(range(1, 10)) and seen_k[5] == set(range(1, 6)) and seen_k[1] == {1}
    a = sample_mlm_mask(lens, 11, torch.Generator().manual_seed(7))
    b = sample_mlm_mask(lens, 11, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["ar", "maskctc"])
def test_forward_contract(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(TINY, V, kind).eval()
    batch = tiny_batch()
    out = run(model, batch)
    assert out["enc"].shape == (2, 14, 32) and out["enc_lens"].tolist() == [14, 10]
    assert out["ctc_logp"].shape == (2, 14, V)
    assert torch.allclose(out["ctc_logp"].exp().sum(-1), torch.ones(2, 14), atol=1e-5)
    expected = TINY.ctc_weight * out["loss_ctc"] + (1 - TINY.ctc_weight) * out["loss_att"]
    assert torch.allclose(out["loss"], expected)
    assert 0.0 <= out["acc"] <= 1.0
    if kind == "ar":
        assert out["dec_logits"].shape == (2, 6, V)
        ys_in = torch.tensor([[SOS_EOS, 4, 5, 6, 7, 8], [SOS_EOS, 9, 10, 11, -1, -1]])
        ref = model.decoder_logits(out["enc"], out["enc_lens"], ys_in, torch.tensor([6, 4]))
        assert torch.equal(out["ys_in"], ys_in)
        assert torch.allclose(out["dec_logits"][0], ref[0]) and torch.allclose(
            out["dec_logits"][1, :4], ref[1, :4]
        )
    else:
        mask, dec_in = out["mask"], out["dec_in"]
        assert out["dec_logits"].shape == (2, 5, V) and mask.shape == dec_in.shape == (2, 5)
        assert (dec_in[mask] == MASK).all()
        assert torch.equal(
            dec_in[~mask & (batch["tokens"] >= 0)], batch["tokens"][~mask & (batch["tokens"] >= 0)]
        )
        assert dec_in[1, 3:].tolist() == [IGNORE_ID, IGNORE_ID] and not mask[1, 3:].any()
        ref = model.mlm_logits(out["enc"], out["enc_lens"], dec_in, batch["token_lens"])
        assert torch.allclose(out["dec_logits"][0], ref[0]) and torch.allclose(
            out["dec_logits"][1, :3], ref[1, :3]
        )


def test_forward_rejects_special_tokens_by_item() -> None:
    model = build_model(TINY, V, "ar")
    batch = tiny_batch()
    batch["tokens"][1, 0] = MASK
    with pytest.raises(ValueError, match=r"batch items \[1\]"):
        run(model, batch)
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model(TINY, V, "rnnt")


@torch.no_grad()
def test_ar_decoder_step_equals_decoder_logits() -> None:
    torch.manual_seed(0)
    model = build_model(TINY, V, "ar").eval()
    batch = tiny_batch()
    enc, enc_lens = model.encode(batch["feats"], batch["feat_lens"])
    ys = torch.tensor([[SOS_EOS, 4, 5, 6], [SOS_EOS, 9, 10, 11]])
    full = model.decoder_logits(enc, enc_lens, ys, torch.tensor([4, 4])).log_softmax(-1)  # (2, 4, V)
    cache = None
    for l in range(1, 5):
        logp, cache = model.decoder_step(ys[:, :l], enc, enc_lens, cache)
        assert (logp - full[:, l - 1]).abs().max().item() <= 1e-5
    assert ARModel.select_cache(cache, torch.tensor([1]))[0]["self_k"].size(0) == 1


@pytest.mark.parametrize("kind", ["ar", "maskctc"])
def test_gradients_reach_every_parameter(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(TINY, V, kind)
    run(model, tiny_batch())["loss"].backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert dead == []


@pytest.mark.parametrize("kind", ["ar", "maskctc"])
def test_losses_decrease_on_a_fixed_batch(kind: str) -> None:
    torch.manual_seed(0)
    model = build_model(TINY, V, kind)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batch, history = tiny_batch(), []
    for _ in range(30):
        out = run(model, batch, seed=0)  # same mask every step for Mask-CTC
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append((out["loss"].item(), out["loss_ctc"].item(), out["loss_att"].item()))
    first, last = history[0], history[-1]
    assert last[0] < 0.5 * first[0]
    assert last[1] < first[1] and last[2] < first[2]


def test_model_classes_by_kind() -> None:
    assert isinstance(build_model(TINY, V, "ar"), ARModel)
    assert isinstance(build_model(TINY, V, "maskctc"), MaskCTCModel)
    with pytest.raises(ValueError, match="vocab_size"):
        build_model(TINY, 4, "ar")
