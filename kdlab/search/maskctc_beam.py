"""Mask-CTC beam search, paper Sec. 3.1 Algorithm 1.

Start from greedy CTC with low-confidence tokens masked (lines 1–3). In each of the ⌈N/K⌉ iterations
(k = K, the last iteration N mod K) every hypothesis of the beam Ω0 is expanded by its top-B candidate
sets of k masked positions with one token each, scored by the summed log posteriors of eq 5
(:func:`kdlab.search.kbest.topk_fill_sets`, exact); a hypothesis' score is the accumulated sum over
iterations. The B best *distinct* hypotheses (identical partial sequences reached through different fill
orders are merged, keeping the best score) form the next beam (lines 5–10); the best one is returned
(line 11). All hypotheses of all utterances share one MLM call per iteration. With B = 1 this is exactly
:func:`kdlab.search.maskctc.maskctc_greedy`.
"""

from __future__ import annotations

import torch

from kdlab.search.ctc import greedy_tensors
from kdlab.search.kbest import topk_fill_sets
from kdlab.search.maskctc import MLMFn, fill_count, initial_masks, mlm_log_posteriors
from kdlab.search.types import BeamHypState, Hyp, MaskBeamIteration, MaskBeamTrace
from kdlab.tokens import MASK


def select_distinct(utt: torch.Tensor, ys: torch.Tensor, score: torch.Tensor, B: int) -> torch.Tensor:
    """Indices of the best B distinct rows of ``ys`` per utterance, grouped by utterance, best first.

    utt (C,), ys (C, L), score (C,). Rows with a score of -inf are dropped.
    """
    order = score.argsort(descending=True, stable=True)
    order = order[torch.isfinite(score[order])]
    if len(order) == 0:
        return order
    key = torch.cat([utt[order, None], ys[order]], dim=1)
    _, inv = torch.unique(key, dim=0, return_inverse=True)
    C = len(order)
    first = torch.full((int(inv.max()) + 1,), C, dtype=torch.long, device=ys.device)
    first.scatter_reduce_(0, inv, torch.arange(C, device=ys.device), reduce="amin")
    cand = order[first.sort().values]  # one (best) row per distinct sequence, best first
    cand = cand[utt[cand].argsort(stable=True)]  # grouped by utterance, still best first
    u = utt[cand]
    counts = torch.bincount(u)
    offsets = counts.cumsum(0) - counts
    rank = torch.arange(len(cand), device=ys.device) - offsets[u]
    return cand[rank < B]


def maskctc_beam(
    ctc_logp: torch.Tensor, lens: torch.Tensor, mlm: MLMFn, beam: int = 10, p_thr: float = 0.99,
    K: int = 2, trace: bool = False,
) -> list[list[Hyp]] | tuple[list[list[Hyp]], list[MaskBeamTrace]]:
    """Batched Algorithm 1. ctc_logp (B, T', V), lens (B,); ``mlm(ys_in, ys_lens, rows)`` -> logits.

    Returns per utterance the final beam, best first (``Hyp.score`` = accumulated eq 5 log posterior);
    the decoded output is ``result[b][0].tokens``.
    """
    if beam < 1 or K < 1:
        raise ValueError(f"beam and K must be >= 1, got beam={beam}, K={K}")
    ys0, ys_lens, mask0, conf = initial_masks(ctc_logp, lens, p_thr)
    dev = ys0.device
    utt = torch.arange(len(ys0), device=dev)  # (H,) utterance of each hypothesis
    ys, score = ys0.clone(), torch.zeros(len(ys0), dtype=torch.float64, device=dev)
    remaining = mask0.sum(dim=1)  # (B,) masks left per utterance (same for all its hypotheses)
    traces = _trace_start(ctc_logp, lens, conf, mask0, ys_lens) if trace else []
    while bool((remaining > 0).any()):
        act = (remaining[utt] > 0).nonzero().squeeze(1)  # hypotheses with masks left
        a_utt = utt[act]
        logp = mlm_log_posteriors(mlm(ys[act], ys_lens[a_utt], a_utt))  # (A, L, V)
        k = fill_count(remaining[a_utt], K)  # (A,)
        set_sc, set_pos, set_tok = topk_fill_sets(logp, ys[act] == MASK, k, beam)  # (A, beam[, Kmax])
        new_ys, new_sc, parent = _expand(ys[act], score[act], set_sc, set_pos, set_tok)
        new_utt = a_utt[parent]
        done = (remaining[utt] == 0).nonzero().squeeze(1)  # finished utterances keep their beam
        all_utt = torch.cat([utt[done], new_utt])
        all_ys, all_sc = torch.cat([ys[done], new_ys]), torch.cat([score[done], new_sc])
        keep = select_distinct(all_utt, all_ys, all_sc, beam)
        if trace:
            _trace_iteration(traces, utt, act, k, (set_sc, set_pos, set_tok), all_ys, all_sc, keep, len(done))
        utt, ys, score = all_utt[keep], all_ys[keep], all_sc[keep]
        remaining[torch.unique(a_utt)] -= fill_count(remaining[torch.unique(a_utt)], K)
    out = _collect(utt, ys, score, ys_lens, len(ys0))
    return (out, traces) if trace else out


def _expand(
    ys: torch.Tensor, score: torch.Tensor, set_sc: torch.Tensor, set_pos: torch.Tensor, set_tok: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply every candidate set to its hypothesis: (A, L) -> (A·beam, L) sequences, scores, parents."""
    A, Bm, _ = set_pos.shape
    parent = torch.arange(A, device=ys.device).repeat_interleave(Bm)  # (A·beam,)
    new_ys = ys[parent].clone()
    new_sc = score[parent] + set_sc.flatten()
    row = torch.arange(A * Bm, device=ys.device)[:, None].expand(-1, set_pos.shape[2])
    pos, tok = set_pos.flatten(0, 1), set_tok.flatten(0, 1)  # (A·beam, Kmax)
    used = pos >= 0
    new_ys[row[used], pos[used]] = tok[used]
    return new_ys, new_sc, parent


def _collect(
    utt: torch.Tensor, ys: torch.Tensor, score: torch.Tensor, ys_lens: torch.Tensor, B: int
) -> list[list[Hyp]]:
    out: list[list[Hyp]] = [[] for _ in range(B)]
    lens = ys_lens.tolist()
    for u, y, s in zip(utt.tolist(), ys.tolist(), score.tolist(), strict=True):
        out[u].append(Hyp(y[: lens[u]], s))
    return out


def _trace_start(
    ctc_logp: torch.Tensor, lens: torch.Tensor, conf: torch.Tensor, mask0: torch.Tensor, ys_lens: torch.Tensor
) -> list[MaskBeamTrace]:
    g = greedy_tensors(ctc_logp, lens).tokens
    return [
        MaskBeamTrace(g[b, :n].tolist(), conf[b, :n].tolist(), mask0[b, :n].tolist())
        for b, n in enumerate(ys_lens.tolist())
    ]


def _rank_in_group(utt: torch.Tensor) -> torch.Tensor:
    """Position of each row within its utterance's block (rows are grouped by utterance)."""
    counts = torch.bincount(utt)
    return torch.arange(len(utt), device=utt.device) - (counts.cumsum(0) - counts)[utt]


def _trace_iteration(
    traces: list[MaskBeamTrace], prev_utt: torch.Tensor, act: torch.Tensor, k: torch.Tensor,
    sets: tuple[torch.Tensor, torch.Tensor, torch.Tensor], all_ys: torch.Tensor, all_sc: torch.Tensor,
    keep: torch.Tensor, n_done: int,
) -> None:
    """Record, per expanded utterance, the kept beam with each hypothesis' parent rank and its fills."""
    set_sc, set_pos, set_tok = sets  # (A, beam), (A, beam, Kmax) x2
    Bm = set_pos.shape[1]
    prev_rank = _rank_in_group(prev_utt)[act].tolist()  # (A,) rank of each expanded hypothesis
    act_utt = prev_utt[act].tolist()
    finite = torch.isfinite(set_sc).sum(dim=1).tolist()
    iters: dict[int, MaskBeamIteration] = {}
    for a, u in enumerate(act_utt):
        it = iters.setdefault(u, MaskBeamIteration(int(k[a]), 0, []))
        it.num_candidates += finite[a]
    pos_l, tok_l = set_pos.flatten(0, 1).tolist(), set_tok.flatten(0, 1).tolist()
    for i in keep.tolist():
        if i < n_done:  # an utterance that had already finished
            continue
        c = i - n_done
        a, u = c // Bm, act_utt[c // Bm]
        n = len(traces[u].ctc_tokens)
        chosen = [(p, t) for p, t in zip(pos_l[c], tok_l[c], strict=True) if p >= 0]
        iters[u].beam.append(BeamHypState(all_ys[i, :n].tolist(), float(all_sc[i]), chosen, prev_rank[a]))
    for u, it in iters.items():
        traces[u].iterations.append(it)
