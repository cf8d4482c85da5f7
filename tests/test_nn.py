"""Building blocks: masks, positional encodings, rel_shift, subsampling, encoder padding, decoder cache."""

from __future__ import annotations

import math

import pytest
import torch

from kdlab.nn.attention import MultiHeadAttention, masked_softmax, rel_shift
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


def test_masked_softmax_fully_masked_row_is_zero() -> None:
    scores = torch.randn(2, 3)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    w = masked_softmax(scores, mask)
    assert torch.allclose(w[0].sum(), torch.tensor(1.0)) and w[0, 1] == 0
    assert torch.equal(w[1], torch.zeros(3))


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
    cache = select_cache(cache, torch.tensor([2, 0]))
    ext = torch.cat([ys[idx], torch.tensor([[5], [6]])], dim=1)
    logits, _ = dec.step(ext, memory[idx], mem_lens[idx], cache)
    ref = dec(ext, torch.tensor([7, 7]), memory[idx], mem_lens[idx])[:, -1]
    assert (logits - ref).abs().max().item() <= 1e-5


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
