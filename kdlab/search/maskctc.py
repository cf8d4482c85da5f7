"""Mask-CTC greedy decoding (Higuchi et al. 2020; paper Sec. 2, eq 4–5).

1. greedy CTC gives tokens and, per token, the max frame probability over its segment;
2. tokens with confidence < ``p_thr`` become ``<mask>`` (as do ``<sos/eos>``/``<mask>`` ids, which a
   CTC head trained on regular targets never emits);
3. the N masks are filled easy-first in ⌈N/K⌉ iterations: each iteration runs the MLM once, scores each
   still-masked position by its best log posterior and fills the k best positions with their argmax
   tokens (eq 5), k = K except the last iteration, which fills the remainder.

The MLM posteriors are a log-softmax over the outputs the decoder may produce: ``<blank>``,
``<sos/eos>`` and ``<mask>`` are never predicted. Differences from ESPnet's ``MaskCTCInference``:
ESPnet ranks positions by raw decoder logits (not normalised log posteriors), decodes one utterance at a
time, and its ``n_iterations`` fixes the number of iterations (⌊N/n⌋ tokens each) whereas the paper's K,
used here, is the number of tokens filled per iteration.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from kdlab.nn.masks import length_mask
from kdlab.search.ctc import greedy_tensors
from kdlab.search.types import MaskCTCTrace, MaskIteration
from kdlab.tokens import MASK, NON_TOKENS, SOS_EOS

# (ys_in (N, L), ys_lens (N,), rows (N,)) -> logits (N, L, V); rows = utterance index of each sequence.
# The searches read the logits at ``<mask>`` slots only (other slots may hold anything).
MLMFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def mlm_log_posteriors(logits: torch.Tensor) -> torch.Tensor:
    """log p_mlm(y | y_obs, H) (eq 4) over the predictable tokens; (N, L, V) -> (N, L, V)."""
    logits = logits.float().clone()
    logits[..., list(NON_TOKENS)] = float("-inf")
    return logits.log_softmax(dim=-1)


def initial_masks(
    ctc_logp: torch.Tensor, lens: torch.Tensor, p_thr: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy CTC, then mask low-confidence tokens.

    Returns ys (B, L) with ``<mask>`` at masked positions, ys_lens (B,), mask (B, L) bool, conf (B, L).
    """
    if not 0.0 <= p_thr <= 1.0:
        raise ValueError(f"p_thr must be in [0, 1], got {p_thr}")
    g = greedy_tensors(ctc_logp, lens)
    L = g.tokens.shape[1]
    valid = length_mask(g.lens, L)  # (B, L)
    mask = low_confidence(g.tokens, g.conf, p_thr) & valid  # (B, L)
    ys = g.tokens.masked_fill(mask, MASK)
    return ys, g.lens, mask, g.conf


def low_confidence(tokens: torch.Tensor, conf: torch.Tensor, p_thr: float) -> torch.Tensor:
    """The masking rule: confidence below ``p_thr``, or an id the CTC head should never emit (an untrained
    head may emit ``<sos/eos>``/``<mask>``). tokens, conf (..., L) -> bool (..., L)."""
    return (conf < p_thr) | (tokens == SOS_EOS) | (tokens == MASK)


def fill_count(remaining: torch.Tensor, K: int) -> torch.Tensor:
    """Tokens filled this iteration: K, or the remainder N mod K in the last one (eq 5's k)."""
    return remaining.clamp(max=K)


def maskctc_greedy(
    ctc_logp: torch.Tensor, lens: torch.Tensor, mlm: MLMFn, p_thr: float = 0.99, K: int = 2,
    trace: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[MaskCTCTrace]]:
    """Batched easy-first Mask-CTC decoding; one MLM call per iteration for all utterances with masks.

    ctc_logp (B, T', V), lens (B,) encoder lengths, ``mlm(ys_in, ys_lens, rows)`` the CMLM decoder.
    Returns the token ids per utterance (and, with ``trace``, a :class:`MaskCTCTrace` each).
    """
    if K < 1:
        raise ValueError(f"K (tokens per iteration) must be >= 1, got {K}")
    ys, ys_lens, mask, conf = initial_masks(ctc_logp, lens, p_thr)
    traces = []
    if trace:
        g = greedy_tensors(ctc_logp, lens).tokens
        traces = [_trace_start(g[b], conf[b], mask[b], int(n)) for b, n in enumerate(ys_lens)]
    remaining = mask.sum(dim=1)  # (B,)
    L = ys.shape[1]
    while bool((remaining > 0).any()):
        act = (remaining > 0).nonzero().squeeze(1)  # (A,) utterances with masks left
        logp = mlm_log_posteriors(mlm(ys[act], ys_lens[act], act))  # (A, L, V)
        best, arg = logp.max(dim=-1)  # (A, L)
        m = mask[act]
        score = best.masked_fill(~m, float("-inf"))
        k = fill_count(remaining[act], K)  # (A,)
        order = score.argsort(dim=1, descending=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(L, device=ys.device).expand_as(order))
        chosen = (rank < k[:, None]) & m  # (A, L)
        if trace:
            _trace_iteration(traces, act, k, m, best, arg, chosen, torch.where(chosen, arg, ys[act]))
        ys[act] = torch.where(chosen, arg, ys[act])
        mask[act] = m & ~chosen
        remaining[act] -= k
    out = [row[:n] for row, n in zip(ys.tolist(), ys_lens.tolist(), strict=True)]
    return (out, traces) if trace else out


def _trace_start(tokens: torch.Tensor, conf: torch.Tensor, mask: torch.Tensor, n: int) -> MaskCTCTrace:
    return MaskCTCTrace(tokens[:n].tolist(), conf[:n].tolist(), mask[:n].tolist())


def _trace_iteration(
    traces: list[MaskCTCTrace], act: torch.Tensor, k: torch.Tensor, m: torch.Tensor,
    best: torch.Tensor, arg: torch.Tensor, chosen: torch.Tensor, after: torch.Tensor,
) -> None:
    for a, b in enumerate(act.tolist()):
        n = len(traces[b].ctc_tokens)
        masked = m[a].nonzero().squeeze(1).tolist()
        cands = [(p, int(arg[a, p]), float(best[a, p])) for p in masked]
        picked = [(p, int(arg[a, p])) for p in chosen[a].nonzero().squeeze(1).tolist()]
        traces[b].iterations.append(MaskIteration(int(k[a]), masked, cands, picked, after[a, :n].tolist()))
