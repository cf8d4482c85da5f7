"""Transducer decoding (Graves 2012): greedy, and a frame-synchronous beam search.

Both walk the encoder frames in order and allow at most ``max_symbols`` labels per frame (the same limit in
both, default 3; the mini corpora need ~0.46 labels per 40 ms frame on average, 0.7 at most). Every
output id except blank may be emitted (a trained model gives ``<sos/eos>`` and ``<mask>`` ~0 mass).

* ``transducer_greedy``: at each frame, take the argmax; a label is emitted and the prediction network
  advanced, and the same frame is scored again, until blank wins or ``max_symbols`` labels were emitted.
  Batched over utterances.
* ``transducer_beam``: the time-synchronous decoding of Saon et al. (2020, "Alignment-length synchronous
  decoding for RNN transducer"), one utterance at a time, the beam's hypotheses batched. At frame t the
  beam A is expanded in up to ``max_symbols + 1`` rounds: every hypothesis of the round sends its blank
  extension to the next frame's set (equal label sequences are merged by adding their probabilities,
  i.e. log-add: the score is log P(y_1..y_n, frames 1..t), summed over the alignments kept in the beam),
  and the ``beam`` best label extensions of the round form the next round. The next frame keeps the
  ``beam`` best merged hypotheses. With a beam as large as the number of hypotheses, the scores are exact
  sums over every alignment with at most ``max_symbols`` labels per frame (tested against enumeration).
  Hypotheses are ranked by that log-probability, without length normalisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from kdlab.search.types import Hyp
from kdlab.tokens import BLANK

MAX_SYMBOLS = 3  # labels per encoder frame, greedy and beam


def transducer_greedy(model: Any, enc: torch.Tensor, enc_lens: torch.Tensor,
                      max_symbols: int = MAX_SYMBOLS) -> list[list[int]]:
    """enc (B, T', D), enc_lens (B,) -> the greedy label sequence of every utterance."""
    batch = enc.size(0)
    enc_j = model.joiner.project_enc(enc)  # (B, T', J)
    pred, state = model.pred_start(batch)  # (B, P), (layers, B, P) × 2
    pred_j = model.joiner.project_pred(pred)  # (B, J)
    hyps: list[list[int]] = [[] for _ in range(batch)]
    for t in range(enc.size(1)):
        active = enc_lens > t  # (B,) rows still inside their utterance
        for _ in range(max_symbols):
            best = model.joiner.combine(enc_j[:, t], pred_j).argmax(dim=-1)  # (B,)
            active = active & (best != BLANK)
            if not bool(active.any()):
                break
            rows = active.nonzero().flatten()  # (N,)
            pred_j, state = _advance(model, best, rows, pred_j, state)
            for r in rows.tolist():
                hyps[r].append(int(best[r]))
    return hyps


def _advance(model: Any, tokens: torch.Tensor, rows: torch.Tensor, pred_j: torch.Tensor,
             state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Feed tokens[rows] to the prediction network of those rows only; other rows keep their state."""
    out, (h, c) = model.pred_step(tokens[rows], (state[0][:, rows], state[1][:, rows]))
    pred_j, h_all, c_all = pred_j.clone(), state[0].clone(), state[1].clone()
    pred_j[rows], h_all[:, rows], c_all[:, rows] = model.joiner.project_pred(out), h, c
    return pred_j, (h_all, c_all)


@dataclass
class _Beam:
    """Hypotheses of one round, batched: label tuples, log-probs, projected predictor output and state."""

    tokens: list[tuple[int, ...]]
    scores: list[float]
    pred_j: torch.Tensor  # (H, J)
    state: tuple[torch.Tensor, torch.Tensor]  # (layers, H, P) × 2

    def select(self, rows: list[int]) -> _Beam:
        idx = torch.tensor(rows, dtype=torch.long, device=self.pred_j.device)
        return _Beam([self.tokens[r] for r in rows], [self.scores[r] for r in rows], self.pred_j[idx],
                     (self.state[0][:, idx], self.state[1][:, idx]))


def transducer_beam(model: Any, enc: torch.Tensor, enc_lens: torch.Tensor, beam: int = 4,
                    max_symbols: int = MAX_SYMBOLS) -> list[list[Hyp]]:
    """enc (B, T', D), enc_lens (B,) -> per utterance up to ``beam`` hypotheses, best first; ``Hyp.score``
    is log P(y | X) summed over the alignments the search kept."""
    if beam < 1 or max_symbols < 1:
        raise ValueError(f"transducer_beam: beam ({beam}) and max_symbols ({max_symbols}) must be >= 1")
    enc_j = model.joiner.project_enc(enc)  # (B, T', J)
    return [_beam_one(model, enc_j[b, : int(enc_lens[b])], beam, max_symbols) for b in range(enc.size(0))]


def _beam_one(model: Any, enc_j: torch.Tensor, beam: int, max_symbols: int) -> list[Hyp]:
    """One utterance: enc_j (T', J) projected encoder frames."""
    pred, state = model.pred_start(1)
    hyps = _Beam([()], [0.0], model.joiner.project_pred(pred), state)
    for t in range(enc_j.size(0)):
        hyps = _frame(model, enc_j[t], hyps, beam, max_symbols)
    order = sorted(range(len(hyps.tokens)), key=lambda i: -hyps.scores[i])
    return [Hyp(tokens=list(hyps.tokens[i]), score=hyps.scores[i]) for i in order]


def _frame(model: Any, frame_j: torch.Tensor, hyps: _Beam, beam: int, max_symbols: int) -> _Beam:
    """Expand the beam over one frame (frame_j (J,)); returns the next frame's ``beam`` best."""
    ended: dict[tuple[int, ...], list] = {}  # labels -> [log-prob, source round, row]
    rounds: list[_Beam] = []
    current = hyps
    for r in range(max_symbols + 1):
        logp = torch.log_softmax(model.joiner.combine(frame_j, current.pred_j), dim=-1)  # (H, V)
        rounds.append(current)
        for i, (labels, blank) in enumerate(zip(current.tokens, logp[:, BLANK].tolist(), strict=True)):
            score = current.scores[i] + blank
            if labels in ended:
                ended[labels][0] = _logaddexp(ended[labels][0], score)
            else:
                ended[labels] = [score, r, i]
        if r == max_symbols:
            break
        current = _extend(model, current, logp, beam)
    best = sorted(ended.items(), key=lambda kv: -kv[1][0])[:beam]
    return _gather(rounds, best)


def _extend(model: Any, current: _Beam, logp: torch.Tensor, beam: int) -> _Beam:
    """The ``beam`` best one-label extensions of ``current`` (logp (H, V)); advances their predictor."""
    ext = torch.tensor(current.scores, dtype=logp.dtype, device=logp.device)[:, None] + logp  # (H, V)
    ext[:, BLANK] = -math.inf
    top = ext.flatten().topk(min(beam, ext.size(0) * (ext.size(1) - 1)))
    rows, labels = top.indices // ext.size(1), top.indices % ext.size(1)  # (K,), (K,)
    out, state = model.pred_step(labels, (current.state[0][:, rows], current.state[1][:, rows]))
    tokens = [current.tokens[r] + (k,) for r, k in zip(rows.tolist(), labels.tolist(), strict=True)]
    return _Beam(tokens, top.values.tolist(), model.joiner.project_pred(out), state)


def _gather(rounds: list[_Beam], best: list[tuple[tuple[int, ...], list]]) -> _Beam:
    """The kept hypotheses with their merged scores, predictor outputs and states taken from the round
    that produced them (equal labels give equal predictor states, so any source will do)."""
    parts = [rounds[src].select([row]) for _, (_, src, row) in best]
    return _Beam([labels for labels, _ in best], [score for _, (score, _, _) in best],
                 torch.cat([p.pred_j for p in parts]),
                 (torch.cat([p.state[0] for p in parts], dim=1), torch.cat([p.state[1] for p in parts], dim=1)))


def _logaddexp(a: float, b: float) -> float:
    hi, lo = max(a, b), min(a, b)
    return hi if lo == -math.inf else hi + math.log1p(math.exp(lo - hi))
