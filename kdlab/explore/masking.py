"""Mask-CTC's masks and easy-first fills as plain data (eq 4-5): which greedy-CTC tokens a threshold
masks, and per iteration which positions the CMLM fills, with which tokens and probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from kdlab.explore.model import LoadedModel
from kdlab.search.maskctc import low_confidence
from kdlab.search.types import MaskCTCTrace, MaskIteration
from kdlab.tokens import MASK


def masks_at(tokens: Sequence[int], confidences: Sequence[float], p_thr: float) -> list[bool]:
    """Positions Mask-CTC masks before decoding: confidence < ``p_thr`` (and ids the CTC head should never
    emit), :func:`kdlab.search.maskctc.low_confidence`, the rule of the search itself."""
    if len(tokens) != len(confidences):
        raise ValueError(f"{len(tokens)} tokens but {len(confidences)} confidences")
    return low_confidence(torch.tensor(list(tokens), dtype=torch.long),
                          torch.tensor(list(confidences), dtype=torch.float64), p_thr).tolist()


def mask_counts(confidences: Sequence[float], thresholds: Sequence[float]) -> list[int]:
    """Number of masked tokens at each threshold (how p_thr trades CTC tokens for CMLM work)."""
    return [sum(c < p for c in confidences) for p in thresholds]


def masked_pieces(m: LoadedModel, tokens: Sequence[int], masked: Sequence[bool]) -> list[str]:
    """Pieces of the CMLM input y_obs: ``<mask>`` where masked."""
    return [m.piece(MASK) if hide else m.piece(t) for t, hide in zip(tokens, masked, strict=True)]


class Fill(NamedTuple):
    """One position filled by the CMLM: its index, token, piece and probability p(y_l | y_obs, H) (eq 5)."""

    position: int
    token: int
    piece: str
    prob: float


class Candidate(NamedTuple):
    """A still-masked position's best guess in one iteration and whether it was among the k filled."""

    position: int
    token: int
    piece: str
    prob: float
    chosen: bool


def iteration_fills(m: LoadedModel, it: MaskIteration) -> list[Fill]:
    """What one easy-first iteration filled, in position order (probabilities from eq 5's candidates)."""
    logp = {pos: lp for pos, _, lp in it.candidates}
    return [Fill(p, t, m.piece(t), math.exp(logp[p])) for p, t in sorted(it.chosen)]


def iteration_candidates(m: LoadedModel, trace: MaskCTCTrace, i: int = 0) -> list[Candidate]:
    """Every still-masked position's best guess in iteration ``i`` (0-based; eq 5 fills the k most probable);
    empty when there is no such iteration (e.g. nothing was masked)."""
    if not 0 <= i < len(trace.iterations):
        return []
    it = trace.iterations[i]
    chosen = {p for p, _ in it.chosen}
    return [Candidate(p, t, m.piece(t), math.exp(lp), p in chosen) for p, t, lp in it.candidates]


def all_fills(m: LoadedModel, trace: MaskCTCTrace) -> list[list[Fill]]:
    """:func:`iteration_fills` of every iteration."""
    return [iteration_fills(m, it) for it in trace.iterations]


def state_after(trace: MaskCTCTrace, n: int) -> list[int]:
    """The token sequence after ``n`` iterations (``n = 0``: the masked greedy CTC output)."""
    if n <= 0:
        return [MASK if hide else t for t, hide in zip(trace.ctc_tokens, trace.initial_mask, strict=True)]
    return list(trace.iterations[min(n, len(trace.iterations)) - 1].tokens)


def final_tokens(trace: MaskCTCTrace) -> list[int]:
    """The decoded sequence (every mask filled)."""
    return state_after(trace, len(trace.iterations))


def shipped_students(corpus: str = "mini-en") -> list[str]:
    """Names of the shipped Mask-CTC students of a corpus (``"mini-en/student-same-skd"``, …)."""
    from kdlab import pretrained

    names = [n for n in pretrained.available() if n.startswith(f"{corpus}/")]
    return [n for n in names if pretrained.card(*n.split("/"))["kind"] == "maskctc"]
