"""Building blocks: masks, positional encodings, rel_shift, subsampling, encoder padding, decoder cache."""

from __future__ import annotations

import math

import pytest
import torch

from kdlab.nn.attention import MultiHeadAttention, RelPositionMultiHeadAttention, rel_shift
from kdlab.nn.conformer import ConformerEncoder
from kdlab.nn.decoder import TransformerDecoder, select_cache
from kdlab.nn.masks import causal_mask, length_mask, subsampled_lengths
from kdlab.nn.positional import RelativePositionalEncoding, sinusoid_table
from kdlab.nn.subsampling import Conv2dSubsampling4


def tiny_encoder(kernel: int = 7) -> ConformerEncoder:
    torch.manual_seed(0)
    return ConformerEncoder(80, 32, 4, 48, 2, kernel, 0.1, 0.1, 0.0).eval()


def tiny_decoder(causal: bool, vocab: int = 11) -> TransformerDecoder:
    torch.manual_seed(1)
    return TransformerDecoder(vocab, 32, 4, 48, 2, 0.1, 0.1, 0.0, causal=causal).eval()


def test_masks_by_hand() -> None:
    assert length_mask(torch.tensor([2, 0, 3]), 3).tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    # ((T - 1) // 2 - 1) // 2 for T = 7, 8, 10, 11, 100
    assert subsampled_lengths(torch.tensor([7, 8, 10, 11, 100])).tolist() == [1, 1, 1, 2, 24]


def test_sinusoid_table_values() -> None:
    table = sinusoid_table(torch.tensor([0.0, 1.0, -2.0]), 4)  # freqs 1 and 1/100
    expected = [
        [0, 1, 0, 1],
        [math.sin(1), math.cos(1), math.sin(0.01), math.cos(0.01)],
        [math.sin(-2), math.cos(-2), math.sin(-0.02), math.cos(-0.02)],
    ]
    assert torch.allclose(table, torch.tensor(expected), atol=1e-6)


def test_relative_encoding_covers_distances_t_minus_1_to_minus_t_plus_1() -> None:
    enc = RelativePositionalEncoding(8, 0.0)
    x = torch.ones(1, 3, 8)
    scaled, rel = enc(x)
    assert torch.allclose(scaled, x * math.sqrt(8))
    assert rel.shape == (1, 5, 8)
    assert torch.allclose(rel[0], sinusoid_table(torch.tensor([2.0, 1.0, 0.0, -1.0, -2.0]), 8))


def test_rel_shift_selects_distance_i_minus_j() -> None:
    t = 3
    slots = torch.arange(2 * t - 1).float().expand(1, 1, t, 2 * t - 1)  # score = slot index m
    shifted = rel_shift(slots)[0, 0]
    # slot m holds distance T-1-m, so [i, j] must hold slot T-1-(i-j)
    assert shifted.tolist() == [[2, 3, 4], [1, 2, 3], [0, 1, 2]]
    slot = (3 - torch.arange(4)[:, None] + torch.arange(4)[None]).expand(2, 3, 4, 4)  # (B, H, T, T)
    for scores in (torch.randn(2, 3, 4, 7), torch.randn(3, 2, 4, 7).transpose(0, 1)):  # also non-contiguous
        assert torch.equal(rel_shift(scores), scores.gather(-1, slot))


def reference_attention(scores: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Unfused masked softmax attention; fully masked rows get all-zero weights. -> (B, H, Tq, d_k)."""
    weights = scores.masked_fill(~mask, float("-inf")).softmax(-1).nan_to_num(0.0)
    return weights @ v


def merge_heads(attn: MultiHeadAttention, out: torch.Tensor) -> torch.Tensor:
    """(B, H, T, d_k) -> linear_out over the concatenated heads, (B, T, D)."""
    return attn.linear_out(out.transpose(1, 2).reshape(out.size(0), out.size(2), -1))


def test_attention_fully_masked_row_gives_zero_weights() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, 0.0)
    q, kv = torch.randn(2, 3, 8, requires_grad=True), torch.randn(2, 4, 8)
    mask = torch.tensor([[True, False, True, True], [False] * 4]).unsqueeze(1)  # item 1 has no keys
    out = attn(q, kv, kv, mask)
    assert torch.allclose(out[1], attn.linear_out.bias.expand(3, -1))  # zero weights, no NaN
    qh, (k, v) = attn.split_heads(attn.linear_q(q)), attn.project_kv(kv, kv)
    ref = merge_heads(attn, reference_attention(qh @ k.transpose(-2, -1) / 2.0, v, mask.unsqueeze(1)))
    assert (out - ref).abs().max().item() <= 1e-6
    out.sum().backward()
    assert torch.isfinite(q.grad).all()


def test_rel_position_attention_matches_unfused_formula() -> None:
    torch.manual_seed(0)
    attn = RelPositionMultiHeadAttention(16, 4, 0.0)
    x = torch.randn(3, 5, 16, requires_grad=True)
    _, pos_emb = RelativePositionalEncoding(16, 0.0)(x)
    mask = length_mask(torch.tensor([5, 3, 0]), 5).unsqueeze(1)  # (B, 1, T); item 2 is empty
    out = attn(x, pos_emb, mask)
    q = attn.linear_q(x).view(3, 5, 4, 4)
    k, v = attn.project_kv(x, x)
    p = attn.split_heads(attn.linear_pos(pos_emb))  # (1, H, 2T-1, d_k)
    content = (q + attn.pos_bias_u).transpose(1, 2) @ k.transpose(-2, -1)
    position = rel_shift((q + attn.pos_bias_v).transpose(1, 2) @ p.transpose(-2, -1))
    ref = merge_heads(attn, reference_attention((content + position) / 2.0, v, mask.unsqueeze(1)))
    assert (out - ref).abs().max().item() <= 1e-5
    grads = torch.autograd.grad(out.square().sum(), [x, attn.pos_bias_v, attn.linear_pos.weight])
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, attn.pos_bias_v, attn.linear_pos.weight])
    for g, r in zip(grads, ref_grads, strict=True):
        assert torch.isfinite(g).all() and torch.allclose(g, r, atol=1e-5, rtol=1e-4)
    unmasked = merge_heads(attn, reference_attention((content + position) / 2.0, v, torch.ones(1, 1, 1, 5).bool()))
    assert (attn(x, pos_emb, None) - unmasked).abs().max().item() <= 1e-5


def test_attention_dropout_acts_in_training_only() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, 0.5)
    q, kv = torch.randn(1, 4, 8), torch.randn(1, 6, 8)
    attn.eval()
    assert torch.equal(attn(q, kv, kv, None), attn(q, kv, kv, None))
    attn.train()
    assert not torch.allclose(attn(q, kv, kv, None), attn(q, kv, kv, None))


def test_attention_ignores_masked_keys() -> None:
    torch.manual_seed(0)
    attn = MultiHeadAttention(16, 4, 0.0)
    q, kv = torch.randn(1, 2, 16), torch.randn(1, 5, 16)
    mask = torch.tensor([[[True, True, True, False, False]]])
    kv_changed = kv.clone()
    kv_changed[:, 3:] = 100.0
    assert torch.allclose(attn(q, kv, kv, mask), attn(q, kv_changed, kv_changed, mask), atol=1e-6)
    assert torch.allclose(attn(q, kv, kv, mask), attn(q, kv[:, :3], kv[:, :3], None), atol=1e-6)


def test_subsampling_shapes_and_short_input_error() -> None:
    sub = Conv2dSubsampling4(80, 16)
    assert sub.out.in_features == 16 * 19
    x, lens = sub(torch.randn(2, 50, 80), torch.tensor([50, 31]))
    assert x.shape == (2, 11, 16) and lens.tolist() == [11, 7]  # ((T-1)//2-1)//2
    with pytest.raises(ValueError, match=r"batch items \[1\]"):
        sub(torch.randn(2, 50, 80), torch.tensor([50, 6]))


@torch.no_grad()
def test_encoder_padding_does_not_leak() -> None:
    enc = tiny_encoder(kernel=15)  # kernel wider than the shortest utterance's frame count
    torch.manual_seed(2)
    lens = [37, 81, 120]
    utts = [torch.randn(n, 80) for n in lens]
    batch = torch.randn(3, max(lens), 80) * 1e3  # loud junk in the padding
    for i, u in enumerate(utts):
        batch[i, : len(u)] = u
    out, out_lens = enc(batch, torch.tensor(lens))
    for i, u in enumerate(utts):
        alone, alone_len = enc(u.unsqueeze(0), torch.tensor([len(u)]))
        n = int(alone_len)
        assert n == int(out_lens[i])
        assert (out[i, :n] - alone[0]).abs().max().item() <= 1e-5


@torch.no_grad()
def test_decoder_step_matches_teacher_forcing_and_cache_reorders() -> None:
    dec = tiny_decoder(causal=True)
    torch.manual_seed(3)
    memory, mem_lens = torch.randn(3, 9, 32), torch.tensor([9, 5, 7])
    ys = torch.randint(4, 11, (3, 6))
    full = dec(ys, torch.tensor([6, 6, 6]), memory, mem_lens)  # (3, 6, V)
    cache = None
    for step in range(1, 7):
        logits, cache = dec.step(ys[:, :step], memory, mem_lens, cache)
        assert (logits - full[:, step - 1]).abs().max().item() <= 1e-5
        assert cache[0]["self_k"].size(2) == step
    # reorder hypotheses: rows [2, 0] of the cache continue rows [2, 0] of ys
    idx = torch.tensor([2, 0])
    src_k = cache[0]["src"].k
    cache = select_cache(cache, torch.tensor([2, 0]))
    assert torch.equal(cache[0]["src"].k, src_k[idx])
    ext = torch.cat([ys[idx], torch.tensor([[5], [6]])], dim=1)
    logits, _ = dec.step(ext, memory[idx], mem_lens[idx], cache)
    ref = dec(ext, torch.tensor([7, 7]), memory[idx], mem_lens[idx])[:, -1]
    assert (logits - ref).abs().max().item() <= 1e-5


@torch.no_grad()
def test_select_cache_keeps_encoder_keys_once_per_utterance() -> None:
    dec = tiny_decoder(causal=True)
    torch.manual_seed(5)
    memory, mem_lens = torch.randn(2, 9, 32), torch.tensor([9, 6])
    rows = torch.tensor([0, 0, 1, 1])  # a beam of two hypotheses per utterance
    ys = torch.randint(4, 11, (4, 3))
    logits, cache = dec.step(ys, memory[rows], mem_lens[rows], None)  # one memory row per hypothesis
    shared_logits, shared = dec.step(ys, memory, mem_lens, None)  # one memory row per run of 2
    assert (logits - shared_logits).abs().max().item() <= 1e-5 and shared[0]["src"].k.size(0) == 2
    swap = torch.tensor([1, 1, 3, 2])  # each row continues a hypothesis of its own utterance
    compact = select_cache(cache, swap, group=2)
    for layer, new, ref in zip(cache, compact, shared, strict=True):
        assert torch.equal(new["self_k"], layer["self_k"][swap])
        assert new["src"].group == 2 and torch.allclose(new["src"].k, ref["src"].k, atol=1e-6)
    again = select_cache(compact, torch.tensor([0, 1, 3, 3]), group=2)
    assert all(a["src"] is c["src"] for a, c in zip(again, compact, strict=True))  # nothing copied
    ext = torch.cat([ys[swap], torch.tensor([[4], [5], [6], [7]])], dim=1)
    ref = dec(ext, torch.tensor([4] * 4), memory[rows], mem_lens[rows])[:, -1]
    for reordered in (compact, select_cache(cache, swap), select_cache(shared, swap, group=2)):
        logits, _ = dec.step(ext, memory[rows], mem_lens[rows], reordered)
        assert (logits - ref).abs().max().item() <= 1e-5
    dropped = select_cache(compact, torch.tensor([2, 3]), group=2)  # utterance 0 leaves the beam
    assert torch.equal(dropped[0]["src"].v, compact[0]["src"].v[1:])
    spread = select_cache(compact, torch.tensor([3, 0, 1]))  # back to one source row per hypothesis
    assert spread[0]["src"].group == 1 and torch.equal(spread[0]["src"].k, compact[0]["src"].k[[1, 0, 0]])
    with pytest.raises(ValueError, match="runs of 2"):
        select_cache(compact, torch.tensor([0, 1, 2]), group=2)


@torch.no_grad()
def test_causal_vs_bidirectional_and_padding_in_decoder() -> None:
    torch.manual_seed(4)
    memory, mem_lens = torch.randn(1, 6, 32), torch.tensor([6])
    ys = torch.tensor([[4, 5, 6, 7]])
    ys_late = torch.tensor([[4, 5, 6, 9]])  # only the last token differs
    lens = torch.tensor([4])
    causal, bidir = tiny_decoder(True), tiny_decoder(False)
    assert torch.allclose(
        causal(ys, lens, memory, mem_lens)[:, :3], causal(ys_late, lens, memory, mem_lens)[:, :3]
    )
    assert not torch.allclose(
        bidir(ys, lens, memory, mem_lens)[:, :3], bidir(ys_late, lens, memory, mem_lens)[:, :3]
    )
    padded = torch.tensor([[4, 5, 6, 7, -1, -1]])  # IGNORE_ID padding is accepted and never attended to
    for dec in (causal, bidir):
        a = dec(ys, lens, memory, mem_lens)
        b = dec(padded, lens, memory, mem_lens)[:, :4]
        assert (a - b).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match=r"rows \[0\]"):
        bidir(torch.tensor([[4, 11]]), torch.tensor([2]), memory, mem_lens)


def test_cmlm_absolute_positions_on_top_of_relative_ones() -> None:
    """``abs_pos``: the rel-pos CMLM's input gets the sinusoidal table added (an all-<mask> input then tells
    its positions apart from the first layer on); the preset flag reaches the CMLM only, never the AR decoder."""
    from kdlab.models import build_model
    from kdlab.models.config import ModelConfig
    from kdlab.nn.positional import sinusoid_table

    torch.manual_seed(7)
    rel = TransformerDecoder(11, 32, 4, 64, 2, 0.0, 0.0, 0.0, causal=False, rel_pos=True).eval()
    both = TransformerDecoder(11, 32, 4, 64, 2, 0.0, 0.0, 0.0, causal=False, rel_pos=True, abs_pos=True).eval()
    both.load_state_dict(rel.state_dict())
    memory, mem_lens = torch.randn(1, 6, 32), torch.tensor([6])
    ys, lens = torch.tensor([[4, 4, 4, 4]]), torch.tensor([4])
    with torch.no_grad():
        out = both(ys, lens, memory, mem_lens)
        x, pos_emb = rel.pos_enc(rel.embed(ys))  # the rel-pos decoder by hand, the table added to its input
        x = x + sinusoid_table(torch.arange(4), 32)
        srcs = rel.sources(memory, mem_lens)
        for layer, src in zip(rel.decoders, srcs, strict=True):
            x = layer.forward_rel(x, pos_emb, torch.ones(1, 1, 4, dtype=torch.bool), None, None, src, None)
        assert torch.allclose(out, rel.output_layer(rel.after_norm(x)), atol=1e-5)
    cfg = ModelConfig(d_model=32, heads=4, ffn_dim=64, enc_blocks=1, dec_blocks=1, cnn_kernel=3,
                      subsample_channels=8, cmlm_rel_pos=True, cmlm_abs_pos=True)
    assert build_model(cfg, 11, "maskctc").decoder.abs_pos and not build_model(cfg, 11, "ar").decoder.abs_pos


def test_relative_position_cmlm_decoder() -> None:
    """The CMLM option ``rel_pos``: bidirectional, padding-invariant, scaled embedding init, AR refused."""
    torch.manual_seed(5)
    dec = TransformerDecoder(11, 32, 4, 64, 2, 0.0, 0.0, 0.0, causal=False, rel_pos=True,
                             embed_std=32**-0.5).eval()
    assert abs(dec.embed.weight.std().item() - 32**-0.5) < 0.03
    memory, mem_lens = torch.randn(2, 6, 32), torch.tensor([6, 4])
    ys, lens = torch.tensor([[4, 5, 6, 7], [4, 5, 6, 7]]), torch.tensor([4, 4])
    late = torch.tensor([[4, 5, 6, 9], [4, 5, 6, 9]])
    assert not torch.allclose(dec(ys, lens, memory, mem_lens)[:, :3], dec(late, lens, memory, mem_lens)[:, :3])
    alone = dec(ys[1:], lens[1:], memory[1:, :4], mem_lens[1:])  # no padding at all
    padded = dec(torch.tensor([[4, 5, 6, 7, -1, -1]] * 2), lens, memory, mem_lens)[1:, :4]
    assert (alone - padded).abs().max().item() <= 1e-5
    with pytest.raises(ValueError, match="bidirectional"):
        TransformerDecoder(11, 32, 4, 64, 2, 0.0, 0.0, 0.0, causal=True, rel_pos=True)


@pytest.mark.parametrize("rel_pos,abs_pos", [(False, False), (True, False), (True, True)])
def test_decoder_logits_at_positions_match_the_full_pass(rel_pos: bool, abs_pos: bool) -> None:
    """``positions=``: the last block computes only those queries; the logits equal the full pass there."""
    torch.manual_seed(6)
    dec = TransformerDecoder(11, 32, 4, 64, 3, 0.0, 0.0, 0.0, causal=False, rel_pos=rel_pos,
                             abs_pos=abs_pos).eval()
    memory, mem_lens = torch.randn(2, 6, 32), torch.tensor([6, 4])
    ys, lens = torch.tensor([[4, 3, 6, 3, 8], [3, 5, 9, 0, 0]]), torch.tensor([5, 3])
    pos = torch.tensor([[1, 3, 4], [0, 2, 0]])  # (B, Q); row 1 repeats slot 0 as padding
    full = dec(ys, lens, memory, mem_lens)  # (B, L, V)
    at = dec(ys, lens, memory, mem_lens, positions=pos)  # (B, Q, V)
    assert at.shape == (2, 3, 11)
    assert torch.allclose(at, full.gather(1, pos[..., None].expand(-1, -1, 11)), atol=1e-5)
    with pytest.raises(ValueError, match="bidirectional"):
        tiny_decoder(True)(ys, lens, memory, mem_lens, positions=pos)


def test_cpu_dropout_keeps_one_minus_p_and_rescales():
    """Each of the four 15-bit fields of a draw keeps 1 − p of its elements; survivors are scaled by 1/(1 − p)."""
    from kdlab.nn.dropout import dropout

    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, 0.1, training=True)
    kept = y != 0
    per_field = kept.view(-1, 4).float().mean(dim=0)  # (4,) the four fields of each 64-bit draw
    assert torch.all((per_field - 0.9).abs() < 0.004), per_field
    assert torch.equal(y[kept], torch.full_like(y[kept], 1 / 0.9))
    assert dropout(x, 0.1, training=False) is x and dropout(x, 0.0, training=True) is x
    odd = dropout(torch.ones(3, 5, 7), 0.5, training=True)  # 105 elements: not a multiple of four
    assert odd.shape == (3, 5, 7) and set(odd.unique().tolist()) <= {0.0, 2.0}


def test_cpu_dropout_follows_the_seed_and_its_gradient_is_the_mask():
    from kdlab.nn.dropout import Dropout

    layer = Dropout(0.3)
    x = torch.randn(64, 48, requires_grad=True)
    torch.manual_seed(5)
    a = layer(x)
    torch.manual_seed(5)
    b = layer(x)
    assert torch.equal(a, b) and not torch.equal(a, layer(x))
    a.sum().backward()
    assert torch.allclose(x.grad, (a != 0).float() / 0.7)
    layer.eval()
    assert layer(x) is x and repr(layer) == "Dropout(p=0.3)"
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)
