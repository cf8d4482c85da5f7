"""Transducer KD (Yang et al. 2022): the teacher's one-best (Viterbi) path on hand-computed and brute-force
lattices, the KL terms and their node sets, padding, and training steps with tiny teacher and student."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from kdlab.config import ConfigError
from kdlab.kd.config import KDConfig
from kdlab.kd.families import build_family_distiller
from kdlab.kd.transducer import lattice_mask, node_kl, transducer_kd_loss, viterbi_path
from kdlab.models import ModelConfig, build_model
from kdlab.tokens import BLANK

TINY = ModelConfig(d_model=16, heads=2, ffn_dim=32, enc_blocks=1, cnn_kernel=3, dropout=0.0, pos_dropout=0.0)


def path_nodes(mask: torch.Tensor) -> list[tuple[int, int]]:
    """bool (T', U+1) -> the selected (t, u) in order."""
    return [tuple(x) for x in mask.nonzero().tolist()]


def lattice_from(blank: list[list[float]], emit: list[list[float]], vocab: int = 4) -> torch.Tensor:
    """Log-probs (1, T, U+1, V) with P(blank | t, u) = blank[t][u] and P(label y_{u+1} = 1 | t, u) =
    emit[t][u]; the rest of each node's mass spread over the other ids."""
    frames, nodes = len(blank), len(blank[0])
    probs = torch.zeros(1, frames, nodes, vocab)
    for t, u in itertools.product(range(frames), range(nodes)):
        label = emit[t][u] if u < nodes - 1 else 0.0
        probs[0, t, u, BLANK], probs[0, t, u, 1] = blank[t][u], label
        probs[0, t, u, 2:] = (1.0 - blank[t][u] - label) / (vocab - 2)
    return probs.log()


def test_viterbi_path_hand_computed() -> None:
    # T = 3, U = 2, labels y = (1, 1). P(blank | t, u) and P(y_{u+1} | t, u):
    blank = [[0.2, 0.6, 0.1],
             [0.3, 0.2, 0.7],
             [0.5, 0.5, 0.9]]
    emit = [[0.7, 0.3],
            [0.6, 0.7],
            [0.4, 0.4]]
    # the 6 paths (E = label, B = blank), each ending with the final blank at (2, 2) (0.9):
    #   E E B B: 0.7·0.3·0.1·0.7·0.9 = 0.01323     E B E B: 0.7·0.6·0.7·0.7·0.9 = 0.18522
    #   E B B E: 0.7·0.6·0.2·0.4·0.9 = 0.03024     B E E B: 0.2·0.6·0.7·0.7·0.9 = 0.05292
    #   B E B E: 0.2·0.6·0.2·0.4·0.9 = 0.00864     B B E E: 0.2·0.3·0.4·0.4·0.9 = 0.00864
    # best: E B E B -> nodes (0,0) (0,1) (1,1) (1,2) (2,2)
    logp = lattice_from(blank, emit)
    path = viterbi_path(logp, torch.tensor([[1, 1]]), torch.tensor([3]), torch.tensor([2]))
    assert path_nodes(path[0]) == [(0, 0), (0, 1), (1, 1), (1, 2), (2, 2)]


def brute_force_best(logp: torch.Tensor, labels: list[int]) -> float:
    """max over all alignments of the path log-probability (logp (T, U+1, V))."""
    frames, best = logp.size(0), -math.inf
    for labels_at in itertools.combinations(range(frames - 1 + len(labels)), len(labels)):
        t = u = 0
        score = 0.0
        for step in range(frames - 1 + len(labels)):
            if step in labels_at:
                score, u = score + float(logp[t, u, labels[u]]), u + 1
            else:
                score, t = score + float(logp[t, u, BLANK]), t + 1
        best = max(best, score + float(logp[t, u, BLANK]))
    return best


def path_score(logp: torch.Tensor, labels: list[int], nodes: list[tuple[int, int]]) -> float:
    """Score of a monotone node path: each node emits the move to the next node (final node: blank)."""
    score = 0.0
    for (t, u), nxt in zip(nodes, nodes[1:] + [None], strict=True):
        score += float(logp[t, u, labels[u]] if nxt is not None and nxt[1] == u + 1 else logp[t, u, BLANK])
    return score


def test_viterbi_path_is_the_best_alignment_in_a_padded_batch() -> None:
    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(2, 5, 4, 6) * 2, dim=-1)  # (B, T', U+1, V)
    tokens, enc_lens, token_lens = torch.tensor([[4, 5, 4], [5, 4, -1]]), torch.tensor([5, 3]), torch.tensor([3, 2])
    logp[1, 3:] = 0.0  # padding: would win any max if it were read
    path = viterbi_path(logp, tokens, enc_lens, token_lens)
    for b, (frames, labels) in enumerate([(5, [4, 5, 4]), (3, [5, 4])]):
        nodes = path_nodes(path[b])
        assert len(nodes) == frames + len(labels) and nodes[0] == (0, 0) and nodes[-1] == (frames - 1, len(labels))
        lat = logp[b, :frames, : len(labels) + 1]
        assert path_score(lat, labels, nodes) == pytest.approx(brute_force_best(lat, labels), abs=1e-5)
    alone = viterbi_path(logp[1:, :3, :3], tokens[1:, :2], enc_lens[1:], token_lens[1:])
    assert torch.equal(alone[0], path[1, :3, :3]) and not path[1, 3:].any() and not path[1, :, 3].any()


def test_empty_reference_path_is_all_blanks() -> None:
    logp = torch.log_softmax(torch.randn(1, 4, 1, 5), dim=-1)
    path = viterbi_path(logp, torch.zeros(1, 0, dtype=torch.long), torch.tensor([4]), torch.tensor([0]))
    assert path_nodes(path[0]) == [(0, 0), (1, 0), (2, 0), (3, 0)]


def test_kl_is_zero_for_equal_models_and_matches_its_definition() -> None:
    torch.manual_seed(1)
    t, s = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    nodes = lattice_mask(torch.tensor([4, 2]), torch.tensor([2, 1]), 4, 2)
    assert float(transducer_kd_loss(t, t.clone(), nodes, torch.tensor([4, 2]), torch.tensor([2, 1]))) == 0.0
    p, q = torch.softmax(t[0, 1, 2] / 2, -1), torch.softmax(s[0, 1, 2] / 2, -1)
    assert float(node_kl(t, s, 2.0)[0, 1, 2]) == pytest.approx(float((p * (p / q).log()).sum() * 4), rel=1e-5)
    assert float(node_kl(t, s, 1.0).min()) >= 0.0


def test_lattice_and_onebest_node_sets_and_normalisation() -> None:
    torch.manual_seed(2)
    enc_lens, token_lens = torch.tensor([4, 3]), torch.tensor([2, 1])
    t_logits, s_logits = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    tokens = torch.tensor([[1, 4], [4, -1]])
    lattice = lattice_mask(enc_lens, token_lens, 4, 2)
    onebest = viterbi_path(torch.log_softmax(t_logits, -1), tokens, enc_lens, token_lens)
    assert lattice.sum(dim=(1, 2)).tolist() == [4 * 3, 3 * 2]  # T'·(U+1)
    assert onebest.sum(dim=(1, 2)).tolist() == [4 + 2, 3 + 1]  # T' + U
    assert not (onebest & ~lattice).any()  # the path lies inside the lattice
    kl = node_kl(t_logits, s_logits, 1.0)
    want_onebest = sum(float(kl[b][onebest[b]].sum()) for b in range(2)) / 2  # the path's KL summed
    want_lattice = sum(float(kl[b][lattice[b]].mean()) * n for b, n in enumerate([6, 4])) / 2  # mean × (T'+U)
    got = transducer_kd_loss(t_logits, s_logits, onebest, enc_lens, token_lens)
    assert float(got) == pytest.approx(want_onebest, rel=1e-5)
    got = transducer_kd_loss(t_logits, s_logits, lattice, enc_lens, token_lens)
    assert float(got) == pytest.approx(want_lattice, rel=1e-5)
    # a student equal to the teacher on the path only: one-best KD is zero, lattice KD is not
    on_path = torch.where(onebest[..., None], t_logits, s_logits)
    assert float(transducer_kd_loss(t_logits, on_path, onebest, enc_lens, token_lens)) == pytest.approx(0.0, abs=1e-6)
    assert float(transducer_kd_loss(t_logits, on_path, lattice, enc_lens, token_lens)) > 0.1


def test_padding_nodes_do_not_count() -> None:
    torch.manual_seed(3)
    enc_lens, token_lens = torch.tensor([4, 2]), torch.tensor([2, 1])
    t_logits, s_logits = torch.randn(2, 4, 3, 5), torch.randn(2, 4, 3, 5)
    nodes = lattice_mask(enc_lens, token_lens, 4, 2)
    loss = transducer_kd_loss(t_logits, s_logits, nodes, enc_lens, token_lens)
    noisy = s_logits.clone()
    noisy[1, 2:], noisy[1, :, 2:] = 50.0, -50.0  # garbage in the second utterance's padding
    assert float(transducer_kd_loss(t_logits, noisy, nodes, enc_lens, token_lens)) == pytest.approx(float(loss))
    alone = transducer_kd_loss(t_logits[1:, :2, :2], s_logits[1:, :2, :2], nodes[1:, :2, :2], enc_lens[1:],
                               token_lens[1:])
    first = transducer_kd_loss(t_logits[:1], s_logits[:1], nodes[:1], enc_lens[:1], token_lens[:1])
    assert float(loss) == pytest.approx((float(alone) + float(first)) / 2, rel=1e-6)


# ----------------------------------------------------------------------------- the distiller


def tiny(seed: int, vocab: int = 8, **changes) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(TINY.with_updates(**changes), vocab, "transducer")


def a_batch() -> dict:
    gen = torch.Generator().manual_seed(4)
    return {"ids": ["a", "b"], "texts": ["", ""], "feats": torch.randn(2, 60, 80, generator=gen),
            "feat_lens": torch.tensor([60, 45]), "tokens": torch.tensor([[4, 5, 6], [7, 4, -1]]),
            "token_lens": torch.tensor([3, 2])}


@pytest.mark.parametrize("method", ["onebest", "lattice"])
def test_training_steps_with_a_tiny_teacher(method: str) -> None:
    from kdlab.training.loop import compute_loss

    teacher = tiny(0, d_model=24).eval()
    student = tiny(1)
    distiller = build_family_distiller(KDConfig(method=method, weight=20.0, temperature=2.0), teacher, None)
    before = [p.clone() for p in teacher.parameters()]
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    batch, history = a_batch(), []
    for _ in range(8):
        loss, metrics = compute_loss(student, batch, distiller)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(metrics)
    assert set(metrics) >= {"loss", "loss_jca", "loss_rnnt", "loss_kd", f"kd_{method}"}
    assert metrics["loss"] == pytest.approx(metrics["loss_jca"] + metrics["loss_kd"], rel=1e-5)
    assert metrics["loss_kd"] == pytest.approx(20.0 * metrics[f"kd_{method}"], rel=1e-5)
    assert history[-1][f"kd_{method}"] < history[0][f"kd_{method}"]
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))
    assert all(p.grad is None for p in teacher.parameters())


def test_distiller_rejects_mismatched_models() -> None:
    from kdlab.kd.transducer import TransducerKD

    student = tiny(1)
    batch = a_batch()
    out = student(batch["feats"], batch["feat_lens"], batch["tokens"], batch["token_lens"])
    with pytest.raises(ConfigError, match="vocabulary"):
        TransducerKD(tiny(0, vocab=9), KDConfig(method="onebest"))(student, batch, out)
    with pytest.raises(ConfigError, match="transducer"):
        TransducerKD(build_model(TINY, 8, "ctc"), KDConfig(method="onebest"))
    with pytest.raises(ConfigError, match="onebest or lattice"):
        TransducerKD(tiny(0), KDConfig(method="ctc"))


@pytest.mark.slow
def test_fit_teacher_then_onebest_student_and_decode(tiny_corpus_en: Path, tmp_path: Path) -> None:
    """The trainer end to end: a transducer teacher run, a one-best KD student run that loads it through
    ``kd.teacher``, and the student's checkpoint decoded with both transducer searches."""
    from kdlab.checkpoint import load_model_from_checkpoint
    from kdlab.config import config_from_dict
    from kdlab.data.dataset import make_loader
    from kdlab.search.decode import decode
    from kdlab.training.fit import fit

    def cfg(**extra) -> object:
        model = {k: getattr(TINY, k) for k in ("d_model", "heads", "ffn_dim", "enc_blocks", "cnn_kernel")}
        return config_from_dict({
            "data": {"corpus": str(tiny_corpus_en), "tokenizer": "char",
                     "feature_cache": str(tmp_path.parent / "fbank-cache")},
            "model": {"kind": "transducer", "preset": None, "config": model},
            "train": {"epochs": 1, "lr": 3e-3, "warmup_steps": 4, "max_frames": 3000, "average_last": 1,
                      "num_threads": 1, "progress": False},
            **extra,
        })

    fit(cfg(), tmp_path / "teacher")
    kd = {"enabled": True, "teacher": str(tmp_path / "teacher" / "avg-1.pt"), "method": "onebest"}
    result = fit(cfg(kd=kd), tmp_path / "student")
    assert result["loss_kd"] > 0 and math.isfinite(result["dev_loss"])
    model, tokenizer, cmvn, _ = load_model_from_checkpoint(tmp_path / "student" / "avg-1.pt")
    batch = next(iter(make_loader(str(tiny_corpus_en / "test.jsonl"), tokenizer, cmvn, max_frames=10**6)))
    found = decode(model, batch, ["rnnt_greedy", "rnnt_beam2"])
    assert len(found["rnnt_greedy"]) == len(found["rnnt_beam2"]) == len(batch["ids"])
