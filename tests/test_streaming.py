"""Streaming encoder (chunk masks, causal convolution) and chunk-by-chunk CTC decoding (Shim et al. 2023)."""

from __future__ import annotations

import pytest
import torch

from kdlab.models import ModelConfig, build_model
from kdlab.nn.conformer import ConvModule
from kdlab.nn.masks import chunk_mask
from kdlab.search.ctc import ctc_greedy
from kdlab.search.streaming import StreamingCTC, chunk_context, greedy_at_chunk, latency_ms, stream_utterance

V = 12


def tiny_streaming(chunk: int = 3, left: int = -1, seed: int = 0, **extra: object) -> torch.nn.Module:
    """A random streaming CTC student (2 blocks, d 32); BatchNorm statistics made non-trivial."""
    torch.manual_seed(seed)
    cfg = ModelConfig(d_model=32, heads=4, ffn_dim=48, enc_blocks=2, cnn_kernel=5, subsample_channels=8,
                      chunk_size=chunk, left_chunks=left, **extra)
    model = build_model(cfg, V, "ctc")
    for block in model.encoder.blocks:
        block.conv_module.norm.running_mean.uniform_(-0.5, 0.5)
        block.conv_module.norm.running_var.uniform_(0.5, 2.0)
    return model.eval()


def full_logp(model: torch.nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """Masked full-utterance forward of feats (T, F) -> CTC log-probs (T', V)."""
    with torch.no_grad():
        enc, _ = model.encode(feats.unsqueeze(0), torch.tensor([feats.size(0)]))
        return model.ctc_log_probs(enc)[0]


def test_chunk_mask_by_hand() -> None:
    t, f = True, False
    assert chunk_mask(5, 2).tolist() == [
        [t, t, f, f, f],
        [t, t, f, f, f],
        [t, t, t, t, f],
        [t, t, t, t, f],
        [t, t, t, t, t],
    ]
    assert chunk_mask(5, 2, left_chunks=0).tolist() == [
        [t, t, f, f, f],
        [t, t, f, f, f],
        [f, f, t, t, f],
        [f, f, t, t, f],
        [f, f, f, f, t],
    ]
    assert chunk_mask(6, 2, left_chunks=1)[5].tolist() == [f, f, t, t, t, t]
    assert chunk_mask(4, 1).tolist() == torch.ones(4, 4, dtype=torch.bool).tril().tolist()
    with pytest.raises(ValueError, match="chunk"):
        chunk_mask(4, 0)


def test_causal_conv_is_the_symmetric_conv_shifted_and_sees_no_future() -> None:
    torch.manual_seed(0)
    k, d, T = 5, 6, 12
    sym, causal = ConvModule(d, k).eval(), ConvModule(d, k, causal=True).eval()
    causal.load_state_dict(sym.state_dict())  # same weights: padding is the only difference
    x, valid = torch.randn(1, T, d), torch.ones(1, T, dtype=torch.bool)
    out_sym, out_causal = sym(x, valid), causal(x, valid)  # (1, T, D)
    half = k // 2
    # causal[t] reads frames t-k+1..t = the symmetric window centred on t-half (away from the edges)
    torch.testing.assert_close(out_causal[:, k - 1:], out_sym[:, half:T - half])
    x2 = x.clone()
    x2[:, 7:] += 3.0
    assert torch.equal(causal(x2, valid)[:, :7], out_causal[:, :7])  # past outputs unchanged
    assert not torch.allclose(sym(x2, valid)[:, 5:7], out_sym[:, 5:7])  # the symmetric conv looks ahead


@pytest.mark.parametrize("left", [-1, 1])
def test_future_frames_never_change_past_chunks(left: int) -> None:
    chunk = 3
    model = tiny_streaming(chunk, left)
    torch.manual_seed(1)
    feats = torch.randn(95, 80)  # T' = 22 encoder frames: chunks of 3, the last one partial
    base = full_logp(model, feats)
    for c in range(base.size(0) // chunk):
        last = (c + 1) * chunk - 1  # last encoder frame of chunk c
        horizon = 4 * last + 7  # input frames 4t … 4t+6 feed encoder frame t
        changed = feats.clone()
        changed[horizon:] = torch.randn_like(changed[horizon:])
        out = full_logp(model, changed)
        assert torch.equal(out[: last + 1], base[: last + 1]), f"chunk {c} saw the future"
        if last + 1 < base.size(0):
            assert not torch.allclose(out[last + 1:], base[last + 1:])


def test_non_streaming_encoder_does_look_ahead() -> None:
    model = tiny_streaming(chunk=0)  # chunk_size 0: full context, symmetric convolution
    torch.manual_seed(1)
    feats = torch.randn(95, 80)
    changed = feats.clone()
    changed[60:] += 1.0
    assert not torch.allclose(full_logp(model, changed)[:5], full_logp(model, feats)[:5])


@pytest.mark.parametrize(("left", "piece"), [(-1, 1), (-1, 40), (1, 7), (0, 13)])
def test_streaming_decode_equals_masked_full_forward(left: int, piece: int) -> None:
    model = tiny_streaming(chunk=3, left=left)
    torch.manual_seed(2)
    feats = torch.randn(101, 80)
    decoder = StreamingCTC(model)
    for start in range(0, feats.size(0), piece):
        decoder.accept(feats[start:start + piece])
    decoder.finish()
    streamed = torch.cat(decoder.logp)  # (T', V)
    reference = full_logp(model, feats)
    assert streamed.shape == reference.shape
    torch.testing.assert_close(streamed, reference, atol=1e-5, rtol=1e-5)
    full = ctc_greedy(reference.unsqueeze(0), torch.tensor([reference.size(0)]))[0].tokens
    assert decoder.tokens == full


def test_emitted_tokens_never_change_when_the_future_changes() -> None:
    model = tiny_streaming(chunk=2)
    torch.manual_seed(3)
    feats = torch.randn(160, 80)
    tokens, per_piece = stream_utterance(model, feats, piece=16)
    assert sum(per_piece, []) == tokens
    cut = 80  # pieces 0..4 hold frames < 80; what they emitted only needed frames < 80
    changed = feats.clone()
    changed[cut:] = torch.randn_like(changed[cut:])
    _, per_piece2 = stream_utterance(model, changed, piece=16)
    assert per_piece2[:cut // 16] == per_piece[:cut // 16]


def test_batched_masked_forward_ignores_padding() -> None:
    model = tiny_streaming(chunk=4, left=0)
    torch.manual_seed(4)
    a, b = torch.randn(90, 80), torch.randn(50, 80)
    batch = torch.zeros(2, 90, 80)
    batch[0], batch[1, :50] = a, b
    with torch.no_grad():
        enc, lens = model.encode(batch, torch.tensor([90, 50]))
    torch.testing.assert_close(model.ctc_log_probs(enc)[1, : lens[1]], full_logp(model, b), atol=1e-5, rtol=0)


def test_chunk_context_changes_attention_only_and_restores() -> None:
    model = tiny_streaming(chunk=2)
    torch.manual_seed(5)
    feats = torch.randn(70, 80)
    batch = {"feats": feats.unsqueeze(0), "feat_lens": torch.tensor([70]), "ids": ["u"], "texts": ["x"]}
    with chunk_context(model, 100):  # one chunk covers the utterance: full attention, causal conv
        wide = full_logp(model, feats)
    with chunk_context(model, 0):
        torch.testing.assert_close(full_logp(model, feats), wide)
    assert (model.encoder.chunk_size, model.encoder.left_chunks) == (2, -1)
    ids, refs, hyps = greedy_at_chunk(model, [batch], 0)
    assert (ids, refs) == (["u"], ["x"])
    assert hyps[0] == ctc_greedy(wide.unsqueeze(0), torch.tensor([wide.size(0)]))[0].tokens


def test_latency_and_errors() -> None:
    assert latency_ms(8) == 8 * 40 + 30
    assert latency_ms(1) == 70
    with pytest.raises(ValueError):
        latency_ms(0)
    with pytest.raises(ValueError, match="streaming"):
        StreamingCTC(tiny_streaming(chunk=0))


def test_aux_branches_and_apc_heads_in_forward() -> None:
    model = tiny_streaming(chunk=2, aux_layers=[1, 2], aux_out_dim=20).train()
    feats, lens = torch.randn(2, 60, 80), torch.tensor([60, 45])
    tokens, token_lens = torch.tensor([[4, 5, 6], [7, 8, -1]]), torch.tensor([3, 2])
    out = model(feats, lens, tokens, token_lens)
    t = int(out["enc_lens"].max())
    assert [a.shape for a in out["aux"]] == [torch.Size([2, t, 20])] * 2
    assert [a.shape for a in out["apc"]] == [torch.Size([2, t, 20])] * 2
    model.eval()
    with torch.no_grad():  # inference ignores the aux branches: same outputs without them
        enc, _ = model.encode(feats, lens)
        plain = tiny_streaming(chunk=2)
        plain.load_state_dict({k: v for k, v in model.state_dict().items()
                               if not k.startswith(("aux.", "apc."))})
        torch.testing.assert_close(plain.encode(feats, lens)[0], enc)
