"""Transducer model (Graves 2012): shapes, the RNN-T loss against a brute-force sum over alignments, greedy
and beam search against step-by-step / exhaustive references, decode dispatch, ``init_encoder_from``."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from kdlab.models import ModelConfig, build_model, count_parameters
from kdlab.models.transducer import predictor_input, rnnt_loss_per_utt
from kdlab.search.transducer import transducer_beam, transducer_greedy
from kdlab.tokens import BLANK

TINY = ModelConfig(d_model=16, heads=2, ffn_dim=32, enc_blocks=1, cnn_kernel=3, dropout=0.0, pos_dropout=0.0)


def tiny(vocab: int = 8, seed: int = 0, **changes) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(TINY.with_updates(**changes), vocab, "transducer").eval()


def batch_of(b: int = 2) -> dict:
    gen = torch.Generator().manual_seed(1)
    return {"feats": torch.randn(b, 60, 80, generator=gen), "feat_lens": torch.tensor([60, 41][:b]),
            "tokens": torch.tensor([[4, 5, 6], [7, 4, -1]][:b]), "token_lens": torch.tensor([3, 2][:b])}


# ----------------------------------------------------------------------------- model and loss


def test_forward_shapes_and_parts() -> None:
    model = tiny(pred_dim=12, joint_dim=20)
    b = batch_of()
    out = model(b["feats"], b["feat_lens"], b["tokens"], b["token_lens"])
    assert out["enc"].shape == (2, 14, 16) and out["enc_lens"].tolist() == [14, 9]
    assert out["lattice_logits"].shape == (2, 14, 4, 8)  # (B, T', U+1, V)
    assert out["ctc_logp"].shape == (2, 14, 8)
    assert set(count_parameters(model)) == {"encoder", "ctc", "predictor", "joiner", "total"}
    assert model.predictor.lstm.hidden_size == 12 and model.joiner.out.in_features == 20
    out["loss"].backward()
    assert all(p.grad is not None for p in model.predictor.parameters())


@torch.no_grad()
def test_loss_is_batch_mean_of_rnnt_plus_aux_ctc() -> None:
    model = tiny()
    b = batch_of()
    out = model(b["feats"], b["feat_lens"], b["tokens"], b["token_lens"])
    per_utt = rnnt_loss_per_utt(out["lattice_logits"], out["enc_lens"], b["tokens"], b["token_lens"])
    assert float(out["loss_rnnt"]) == pytest.approx(float(per_utt.sum() / 2), rel=1e-6)
    assert float(out["loss"]) == pytest.approx(0.7 * float(out["loss_rnnt"]) + 0.3 * float(out["loss_ctc"]),
                                              rel=1e-6)  # ctc_weight 0.3
    plain = tiny(ctc_weight=0.0)
    out = plain(b["feats"], b["feat_lens"], b["tokens"], b["token_lens"])
    assert "loss_ctc" not in out and torch.equal(out["loss"], out["loss_rnnt"])


def test_rejects_special_targets() -> None:
    b = batch_of()
    with pytest.raises(ValueError, match="target tokens"):
        tiny()(b["feats"], b["feat_lens"], torch.tensor([[4, 2, 6], [7, 4, -1]]), b["token_lens"])


def brute_force_nll(logits: torch.Tensor, labels: list[int]) -> float:
    """-log Σ over every alignment (T blanks and U labels, the last symbol a blank) of Π P(symbol | t, u);
    logits (T, U+1, V)."""
    frames, logp = logits.size(0), torch.log_softmax(logits.double(), dim=-1)
    total = []
    for labels_at in itertools.combinations(range(frames - 1 + len(labels)), len(labels)):
        t = u = 0
        score = 0.0
        for step in range(frames - 1 + len(labels)):
            if step in labels_at:
                score += float(logp[t, u, labels[u]])
                u += 1
            else:
                score += float(logp[t, u, BLANK])
                t += 1
        total.append(score + float(logp[t, u, BLANK]))  # the final blank leaves (T-1, U)
    return -float(torch.logsumexp(torch.tensor(total), dim=0))


def test_rnnt_loss_matches_brute_force_sum_over_alignments() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 3, 3)  # T = 3, U = 2, V = 3: C(4, 2) = 6 alignments
    labels = [1, 2]
    got = rnnt_loss_per_utt(logits, torch.tensor([3]), torch.tensor([labels]), torch.tensor([2]))
    assert float(got) == pytest.approx(brute_force_nll(logits[0], labels), rel=1e-5)
    # in a padded batch: a shorter second utterance (T = 2, U = 1) sees only its own nodes
    batch = torch.randn(2, 3, 3, 3)
    batch[1, 2:] = 1e3  # padding frames and nodes: garbage
    batch[1, :, 2:] = -1e3
    got = rnnt_loss_per_utt(batch, torch.tensor([3, 2]), torch.tensor([[1, 2], [2, -1]]), torch.tensor([2, 1]))
    assert float(got[0]) == pytest.approx(brute_force_nll(batch[0], [1, 2]), rel=1e-5)
    assert float(got[1]) == pytest.approx(brute_force_nll(batch[1, :2, :2], [2]), rel=1e-5)


# ----------------------------------------------------------------------------- search


def full_recompute_logp(model, enc_t: torch.Tensor, prefix: tuple[int, ...]) -> torch.Tensor:
    """log P(· | t, prefix) by teacher forcing the whole prefix (not the incremental step API): (V,)."""
    g = model.predictor(predictor_input(torch.tensor([list(prefix)], dtype=torch.long).reshape(1, -1)))
    return torch.log_softmax(model.joiner(enc_t.view(1, 1, -1), g[:, -1:])[0, 0, 0], dim=-1)


def reference_greedy(model, enc: torch.Tensor, max_symbols: int) -> list[int]:
    """Greedy search one symbol at a time for one utterance, enc (T', D)."""
    out: list[int] = []
    for t in range(enc.size(0)):
        for _ in range(max_symbols):
            best = int(full_recompute_logp(model, enc[t], tuple(out)).argmax())
            if best == BLANK:
                break
            out.append(best)
    return out


@torch.no_grad()
def test_greedy_matches_reference_and_ignores_padding() -> None:
    model = tiny(vocab=6, seed=3)
    torch.manual_seed(5)
    enc = torch.randn(3, 7, 16) * 3  # a peaky random model emits labels as well as blanks
    lens = torch.tensor([7, 4, 0])
    for max_symbols in (1, 2, 3):
        got = transducer_greedy(model, enc, lens, max_symbols=max_symbols)
        want = [reference_greedy(model, enc[b, : int(lens[b])], max_symbols) for b in range(3)]
        assert got == want
    assert any(got) and got[2] == []


def exhaustive(model, enc: torch.Tensor, max_symbols: int, vocab: int) -> dict[tuple[int, ...], float]:
    """log P(y) for every label sequence y, summed over every alignment with at most ``max_symbols`` labels
    per frame (each frame: 0..max_symbols labels, then a blank), enc (T', D)."""
    per_frame = [seq for n in range(max_symbols + 1) for seq in itertools.product(range(1, vocab), repeat=n)]
    found: dict[tuple[int, ...], list[float]] = {}
    for frames in itertools.product(per_frame, repeat=enc.size(0)):
        prefix: tuple[int, ...] = ()
        score = 0.0
        for t, labels in enumerate(frames):
            for k in labels:
                score += float(full_recompute_logp(model, enc[t], prefix)[k])
                prefix += (k,)
            score += float(full_recompute_logp(model, enc[t], prefix)[BLANK])
        found.setdefault(prefix, []).append(score)
    return {y: float(torch.logsumexp(torch.tensor(s, dtype=torch.float64), 0)) for y, s in found.items()}


@pytest.mark.parametrize(("frames", "max_symbols"), [(3, 1), (2, 2)])
@torch.no_grad()
def test_beam_with_a_full_beam_equals_exhaustive_search(frames: int, max_symbols: int) -> None:
    vocab = 5
    model = tiny(vocab=vocab, seed=2)
    torch.manual_seed(7)
    enc = torch.randn(1, frames, 16) * 2
    want = exhaustive(model, enc[0], max_symbols, vocab)
    hyps = transducer_beam(model, enc, torch.tensor([frames]), beam=len(want), max_symbols=max_symbols)[0]
    assert {tuple(h.tokens) for h in hyps} == set(want)
    for h in hyps:
        assert h.score == pytest.approx(want[tuple(h.tokens)], abs=1e-4)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    # a small beam keeps the exact best here, and no sequence scores above it
    small = transducer_beam(model, enc, torch.tensor([frames]), beam=3, max_symbols=max_symbols)[0]
    assert len(small) <= 3 and small[0].tokens == hyps[0].tokens
    greedy = transducer_greedy(model, enc, torch.tensor([frames]), max_symbols=max_symbols)[0]
    assert want[tuple(greedy)] <= hyps[0].score + 1e-6


@torch.no_grad()
def test_beam_batch_and_padding() -> None:
    model = tiny(vocab=6, seed=4)
    torch.manual_seed(1)
    enc = torch.randn(2, 6, 16) * 2
    both = transducer_beam(model, enc, torch.tensor([6, 3]), beam=4)
    alone = transducer_beam(model, enc[1:, :3], torch.tensor([3]), beam=4)[0]
    assert [h.tokens for h in both[1]] == [h.tokens for h in alone]
    assert [h.score for h in both[1]] == pytest.approx([h.score for h in alone], abs=1e-5)
    with pytest.raises(ValueError, match="beam"):
        transducer_beam(model, enc, torch.tensor([6, 3]), beam=0)


def test_decode_dispatch() -> None:
    from kdlab.search.decode import decode

    model = tiny(vocab=6)
    b = batch_of()
    found = decode(model, b, ["rnnt_greedy", "rnnt_beam3", "ctc_greedy"])
    with torch.no_grad():
        enc, lens = model.encode(b["feats"], b["feat_lens"])
        assert found["rnnt_greedy"] == transducer_greedy(model, enc, lens)
        assert found["rnnt_beam3"] == [h[0].tokens for h in transducer_beam(model, enc, lens, beam=3)]
    with pytest.raises(ValueError, match="transducer"):
        decode(build_model(TINY, 6, "ctc"), b, ["rnnt_greedy"])


# ----------------------------------------------------------------------------- init_encoder_from


def _run_with_tokenizer(tmp_path: Path):
    from kdlab.data.tokenizer import CharTokenizer

    tokenizer = CharTokenizer.train(["abc def", "fed cab"], lang="en")
    tokenizer.save(tmp_path / "run" / "tokenizer")
    return tokenizer


def test_init_encoder_from_loads_the_encoder_only(tmp_path: Path) -> None:
    from kdlab.checkpoint import CheckpointError, save_atomic
    from kdlab.config import ConfigError, ExperimentConfig, ModelSection, TrainConfig
    from kdlab.data.tokenizer import CharTokenizer, tokenizer_sha256
    from kdlab.training.fit import build_state
    from kdlab.training.runtime import Runtime

    tokenizer = _run_with_tokenizer(tmp_path)
    vocab = tokenizer.vocab_size
    torch.manual_seed(11)
    ar = build_model(TINY, vocab, "ar")
    save_atomic({"model": ar.state_dict(), "tokenizer_sha256": tokenizer_sha256(tokenizer)}, tmp_path / "ar.pt")
    section = ModelSection(kind="transducer", preset=None, config=TINY.to_dict())
    cfg = ExperimentConfig(model=section, train=TrainConfig(init_encoder_from=str(tmp_path / "ar.pt")))
    state = build_state(cfg, tmp_path / "run", Runtime(torch.device("cpu")), vocab, train_records=[{}])
    for name, value in ar.encoder.state_dict().items():
        assert torch.equal(state.module.encoder.state_dict()[name], value)
    assert not torch.equal(state.module.ctc.ctc_lo.weight, ar.ctc.ctc_lo.weight)  # only encoder.*

    small = build_model(TINY.with_updates(d_model=8), vocab, "ar")
    save_atomic({"model": small.state_dict(), "tokenizer_sha256": tokenizer_sha256(tokenizer)},
                tmp_path / "small.pt")
    cfg.train.init_encoder_from = str(tmp_path / "small.pt")
    with pytest.raises(ConfigError, match="init_encoder_from.*size mismatch"):
        build_state(cfg, tmp_path / "run", Runtime(torch.device("cpu")), vocab, train_records=[{}])
    other = CharTokenizer.train(["xyz uvw"], lang="en")
    save_atomic({"model": ar.state_dict(), "tokenizer_sha256": tokenizer_sha256(other)}, tmp_path / "other.pt")
    cfg.train.init_encoder_from = str(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="another tokenizer"):
        build_state(cfg, tmp_path / "run", Runtime(torch.device("cpu")), vocab, train_records=[{}])


# ----------------------------------------------------------------------------- streaming


def test_streaming_transducer_if_the_encoder_supports_it() -> None:
    """With ``chunk_size > 0`` the encoder output of a prefix does not depend on later frames."""
    import inspect

    from kdlab.nn.conformer import ConformerEncoder

    if "chunk_size" not in inspect.signature(ConformerEncoder.__init__).parameters:
        pytest.skip("the streaming Conformer encoder (chunk_size) is not in kdlab/nn/conformer.py yet")
    model = tiny(chunk_size=4, left_chunks=-1)
    b = batch_of(1)
    out = model(b["feats"], b["feat_lens"], b["tokens"], b["token_lens"])
    assert math.isfinite(float(out["loss"].detach()))
    with torch.no_grad():
        full, _ = model.encode(b["feats"], b["feat_lens"])
        part, _ = model.encode(b["feats"][:, :35], torch.tensor([35]))  # 35 frames -> 7 = whole chunks + 3
        assert torch.allclose(full[:, :4], part[:, :4], atol=1e-5)  # the first chunk saw no later frames
