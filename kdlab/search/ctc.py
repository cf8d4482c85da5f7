"""CTC decoding (paper Sec. 2, eq 3): greedy, prefix beam search and forced alignment.

All functions take frame log-probabilities ``logp`` (B, T, V) (log-softmax over the vocabulary, blank =
id 0) plus valid lengths, and work on any device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from kdlab.nn.masks import length_mask
from kdlab.search.types import CTCGreedyTrace, CTCResult, Hyp, PrefixBeamTrace, Segment
from kdlab.tokens import BLANK

NEG_INF = float("-inf")


@dataclass
class GreedyTensors:
    """Greedy CTC output as padded tensors (the hot path of Mask-CTC).

    tokens (B, L) padded with BLANK, conf (B, L) = max frame prob per token segment, lens (B,),
    starts/ends (B, L) frame span of each token (end exclusive).
    """

    tokens: torch.Tensor
    conf: torch.Tensor
    lens: torch.Tensor
    starts: torch.Tensor
    ends: torch.Tensor


def _check_inputs(logp: torch.Tensor, lens: torch.Tensor) -> None:
    if logp.dim() != 3:
        raise ValueError(f"logp must be (B, T, V), got shape {tuple(logp.shape)}")
    if lens.shape != (logp.shape[0],):
        raise ValueError(f"lens must be ({logp.shape[0]},), got {tuple(lens.shape)}")
    if len(lens) and (int(lens.max()) > logp.shape[1] or int(lens.min()) < 0):
        raise ValueError(f"lens must lie in [0, {logp.shape[1]}], got {lens.tolist()}")


def greedy_tensors(logp: torch.Tensor, lens: torch.Tensor) -> GreedyTensors:
    """Best path per frame, merge repeats, drop blanks; fully vectorised (no per-token Python)."""
    _check_inputs(logp, lens)
    B, T, _ = logp.shape
    dev = logp.device
    best_logp, ids = logp.max(dim=-1)  # (B, T)
    probs = best_logp.exp()
    valid = length_mask(lens.to(dev), T)  # (B, T)
    prev = torch.cat([torch.full_like(ids[:, :1], -1), ids[:, :-1]], dim=1)
    starts_seg = (ids != prev) & valid  # (B, T) a new run of identical ids begins
    seg = starts_seg.long().cumsum(dim=1) - 1  # (B, T) run index of each frame
    seg = torch.where(valid, seg, torch.full_like(seg, T))  # padding goes to a dump slot
    run_max = torch.zeros(B, T + 1, device=dev, dtype=probs.dtype)
    run_max.scatter_reduce_(1, seg, probs, reduce="amax", include_self=True)
    run_end = torch.zeros(B, T + 1, device=dev, dtype=torch.long)
    frame_idx = torch.arange(1, T + 1, device=dev).expand(B, T)
    run_end.scatter_reduce_(1, seg, frame_idx, reduce="amax", include_self=True)
    is_tok = starts_seg & (ids != BLANK)  # (B, T) first frame of a token run
    out_pos = is_tok.long().cumsum(dim=1) - 1  # (B, T) output slot of each token
    out_lens = is_tok.sum(dim=1)  # (B,)
    L = int(out_lens.max()) if B else 0
    b_idx, t_idx = is_tok.nonzero(as_tuple=True)
    slot = out_pos[b_idx, t_idx]
    tokens = torch.full((B, L), BLANK, dtype=torch.long, device=dev)
    conf = torch.zeros(B, L, dtype=probs.dtype, device=dev)
    starts = torch.zeros(B, L, dtype=torch.long, device=dev)
    ends = torch.zeros(B, L, dtype=torch.long, device=dev)
    run = seg[b_idx, t_idx]
    tokens[b_idx, slot] = ids[b_idx, t_idx]
    conf[b_idx, slot] = run_max[b_idx, run]
    starts[b_idx, slot] = t_idx
    ends[b_idx, slot] = run_end[b_idx, run]
    return GreedyTensors(tokens, conf, out_lens, starts, ends)


def ctc_greedy(
    logp: torch.Tensor, lens: torch.Tensor, trace: bool = False
) -> list[CTCResult] | tuple[list[CTCResult], list[CTCGreedyTrace]]:
    """Greedy (best path) CTC decoding: argmax per frame, merge repeats, remove blanks (eq 3's η).

    logp (B, T, V), lens (B,). Returns one :class:`CTCResult` per utterance (and per-frame traces).
    """
    g = greedy_tensors(logp, lens)
    tok, conf, st, en = g.tokens.tolist(), g.conf.tolist(), g.starts.tolist(), g.ends.tolist()
    results = []
    for b, n in enumerate(g.lens.tolist()):
        results.append(CTCResult(tok[b][:n], conf[b][:n], list(zip(st[b][:n], en[b][:n], strict=True))))
    if not trace:
        return results
    best, ids = logp.max(dim=-1)
    traces = [
        CTCGreedyTrace(ids[b, :n].tolist(), best[b, :n].exp().tolist())
        for b, n in enumerate(lens.tolist())
    ]
    return results, traces


def _lse(a: float, b: float) -> float:
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def _prefix_beam_one(
    logp: torch.Tensor, beam: int, trace: PrefixBeamTrace | None
) -> list[Hyp]:
    """Prefix beam search over one utterance's frames logp (T, V): keeps (p_blank, p_nonblank) per prefix."""
    V = logp.shape[1]
    top_k = min(beam, V)
    top_val, top_idx = logp.topk(top_k, dim=-1)  # (T, k) per-frame candidate pruning
    blank_lp = logp[:, BLANK].tolist()
    top_val, top_idx = top_val.tolist(), top_idx.tolist()
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    for t in range(logp.shape[0]):
        nxt: dict[tuple[int, ...], list[float]] = {}
        for prefix, (pb, pnb) in beams.items():
            total = _lse(pb, pnb)
            entry = nxt.setdefault(prefix, [NEG_INF, NEG_INF])
            entry[0] = _lse(entry[0], total + blank_lp[t])  # emit blank, prefix unchanged
            last = prefix[-1] if prefix else None
            for lp, c in zip(top_val[t], top_idx[t], strict=True):
                if c == BLANK:
                    continue
                ext = nxt.setdefault(prefix + (c,), [NEG_INF, NEG_INF])
                if c == last:
                    entry[1] = _lse(entry[1], pnb + lp)  # repeat merges into the same token
                    ext[1] = _lse(ext[1], pb + lp)  # a blank separated the repeat
                else:
                    ext[1] = _lse(ext[1], total + lp)
        alive = [kv for kv in nxt.items() if _lse(*kv[1]) > NEG_INF]  # unreachable prefixes are dropped
        ranked = sorted(alive, key=lambda kv: _lse(*kv[1]), reverse=True)[:beam]
        beams = {p: (v[0], v[1]) for p, v in ranked}
        if trace is not None:
            trace.beams.append([(list(p), _lse(*v)) for p, v in beams.items()])
    hyps = [Hyp(list(p), _lse(pb, pnb), ctc_score=_lse(pb, pnb)) for p, (pb, pnb) in beams.items()]
    return sorted(hyps, key=lambda h: h.score, reverse=True)


def ctc_prefix_beam(
    logp: torch.Tensor, lens: torch.Tensor, beam: int = 10, trace: bool = False
) -> list[list[Hyp]] | tuple[list[list[Hyp]], list[PrefixBeamTrace]]:
    """CTC prefix beam search: each prefix's score is log sum over its alignments (eq 3) so far.

    logp (B, T, V), lens (B,). Per frame only the ``beam`` most likely symbols extend prefixes. Returns
    per utterance the final beam sorted best first; ``Hyp.score`` = ``Hyp.ctc_score`` = log p_ctc(y|H).
    With a beam at least as large as the number of reachable prefixes the scores are exact.
    """
    _check_inputs(logp, lens)
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    logp_cpu = logp.detach().to("cpu", torch.float64)
    results, traces = [], []
    for b, n in enumerate(lens.tolist()):
        tr = PrefixBeamTrace() if trace else None
        results.append(_prefix_beam_one(logp_cpu[b, :n], beam, tr))
        traces.append(tr)
    return (results, traces) if trace else results


def ctc_forced_align(logp: torch.Tensor, tokens: list[int] | torch.Tensor) -> list[Segment]:
    """Viterbi forced alignment of ``tokens`` to one utterance's logp (T, V).

    Uses ``torchaudio.functional.forced_align`` and ``merge_tokens``; ``Segment.score`` is the mean frame
    probability over the token's frames, [start, end) in encoder frames.
    """
    import torchaudio.functional as taf

    if logp.dim() != 2:
        raise ValueError(f"logp must be (T, V) for one utterance, got shape {tuple(logp.shape)}")
    tok = torch.as_tensor(tokens, dtype=torch.int32).flatten()
    if len(tok) == 0:
        return []
    V = logp.shape[1]
    if int(tok.min()) <= BLANK or int(tok.max()) >= V:
        raise ValueError(f"tokens must lie in [1, {V - 1}] (no blank), got {tok.tolist()}")
    repeats = int((tok[1:] == tok[:-1]).sum())
    if logp.shape[0] < len(tok) + repeats:
        raise ValueError(
            f"cannot align {len(tok)} tokens ({repeats} repeats) to only {logp.shape[0]} frames"
        )
    lp = logp.detach().float().cpu()[None]  # (1, T, V)
    path, scores = taf.forced_align(lp, tok[None], blank=BLANK)
    spans = taf.merge_tokens(path[0], scores[0].exp(), blank=BLANK)
    return [Segment(int(s.token), int(s.start), int(s.end), float(s.score)) for s in spans]
