"""Exact top-B candidate sets for Mask-CTC beam search (paper Algorithm 1, line 8; eq 5).

A candidate set fills k distinct masked positions with one token each; its score is the sum of the
tokens' log posteriors (the log of eq 5's product). The B best sets are found exactly by a small dynamic
programme over positions ("take or skip") that keeps, for every count j <= k, the B best partial sets,
vectorised over hypotheses and counts (for the paper's K = 2 all pairs are simply enumerated at once).
Two reductions keep it small without losing exactness:

- only the top-B tokens of a position can appear in a top-B set (any worse token could be swapped for
  B better ones at the same position, giving B better sets);
- only the top (B + k - 1) positions by best log posterior can appear (a set using a worse position
  leaves at least B better unused positions to swap in).
"""

from __future__ import annotations

import torch


def topk_fill_sets(
    logp: torch.Tensor, mask: torch.Tensor, k: torch.Tensor, B: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-B sets of ``k[h]`` (masked position, token) pairs per hypothesis h.

    logp (H, L, V) log posteriors, mask (H, L) positions still masked, k (H,) set sizes (>= 1).
    Returns scores (H, B) best first (-inf where fewer than B sets exist), positions (H, B, Kmax) and
    tokens (H, B, Kmax), both -1 in unused columns (columns >= k[h]).
    """
    H, L, V = logp.shape
    K = int(k.max())
    b = min(B, V)
    dev = logp.device
    best = logp.amax(dim=-1).masked_fill(~mask, float("-inf"))  # (H, L) best log posterior per position
    M = max(1, min(L, B + K - 1, int(mask.sum(dim=1).max())))
    pos = best.topk(M, dim=-1).indices  # (H, M) candidate positions, best first
    rows = logp.gather(1, pos[..., None].expand(-1, -1, V))  # (H, M, V)
    vals, toks = rows.topk(b, dim=-1)  # (H, M, b) per-position best tokens
    vals = vals.masked_fill(~mask.gather(1, pos)[..., None], float("-inf"))
    if K == 1:  # every set is a single (position, token): a plain top-B
        scores, picks = _single(vals.double(), B)
    elif K == 2:  # the paper's setting: enumerate all pairs in one shot
        scores, picks = _pairs(vals.double(), B)
    else:
        scores, picks = _dp(vals.double(), K, B)  # (H, K+1, B), (H, K+1, B, K) pick code m*b + r
    kk = k.to(dev).long()
    sc = scores[torch.arange(H, device=dev), kk]  # (H, B)
    pk = picks[torch.arange(H, device=dev), kk]  # (H, B, K)
    used = pk >= 0
    m_idx, r_idx = pk.clamp_min(0) // b, pk.clamp_min(0) % b
    positions = pos.gather(1, m_idx.flatten(1)).view_as(pk)
    tokens = toks.flatten(1).gather(1, (m_idx * b + r_idx).flatten(1)).view_as(pk)
    positions = positions.masked_fill(~used, -1)
    tokens = tokens.masked_fill(~used, -1)
    return sc, positions, tokens


def _single(vals: torch.Tensor, B: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-B single picks, laid out like :func:`_dp`'s output for K = 1."""
    H = vals.shape[0]
    flat = vals.flatten(1)  # (H, M*b), code = m*b + r
    n = min(B, flat.shape[1])
    top_sc, top_i = flat.topk(n, dim=1)
    scores = torch.full((H, 2, B), float("-inf"), dtype=vals.dtype, device=vals.device)
    picks = torch.full((H, 2, B, 1), -1, dtype=torch.long, device=vals.device)
    scores[:, 0, 0] = 0.0
    scores[:, 1, :n], picks[:, 1, :n, 0] = top_sc, top_i
    return scores, picks


def _pairs(vals: torch.Tensor, B: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-B singles and top-B pairs of distinct positions, laid out like :func:`_dp`'s output for K = 2."""
    H, M, b = vals.shape
    s1, p1 = _single(vals, B)
    pair = vals[:, :, None, :, None] + vals[:, None, :, None, :]  # (H, M, M, b, b)
    upper = torch.ones(M, M, dtype=torch.bool, device=vals.device).triu(1)[None, :, :, None, None]
    flat = pair.masked_fill(~upper, float("-inf")).flatten(1)  # code = ((m1*M + m2)*b + r1)*b + r2
    n = min(B, flat.shape[1])
    top_sc, top_i = flat.topk(n, dim=1)  # (H, n)
    r2, rest = top_i % b, top_i // b
    r1, rest = rest % b, rest // b
    m2, m1 = rest % M, rest // M
    scores = torch.full((H, 3, B), float("-inf"), dtype=vals.dtype, device=vals.device)
    picks = torch.full((H, 3, B, 2), -1, dtype=torch.long, device=vals.device)
    scores[:, :2], picks[:, :2, :, :1] = s1, p1
    scores[:, 2, :n] = top_sc
    picks[:, 2, :n] = torch.stack([m1 * b + r1, m2 * b + r2], dim=-1)
    return scores, picks


def _dp(vals: torch.Tensor, K: int, B: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Take-or-skip DP over M positions. vals (H, M, b) -> best-B scores and picks for every count."""
    H, M, b = vals.shape
    dev = vals.device
    scores = torch.full((H, K + 1, B), float("-inf"), dtype=vals.dtype, device=dev)
    scores[:, 0, 0] = 0.0  # the empty set
    picks = torch.full((H, K + 1, B, K), -1, dtype=torch.long, device=dev)
    col = torch.arange(K, device=dev)
    put = (col[:, None] == col[None, :])[None, :, None, None, :]  # (1, K, 1, 1, K): count j-1 -> column
    codes = torch.arange(b, device=dev)
    for m in range(M):
        take = scores[:, :-1, :, None] + vals[:, m, None, None, :]  # (H, K, B, b) count j-1 plus pos m
        new_code = (m * b + codes)[None, None, None, :, None]  # (1, 1, 1, b, 1)
        take_picks = torch.where(put, new_code, picks[:, :-1, :, None, :])  # (H, K, B, b, K)
        all_sc = torch.cat([scores[:, 1:], take.flatten(2)], dim=2)  # (H, K, B + B*b)
        all_pk = torch.cat([picks[:, 1:], take_picks.flatten(2, 3)], dim=2)
        top_sc, top_i = all_sc.topk(B, dim=2)  # (H, K, B)
        scores = torch.cat([scores[:, :1], top_sc], dim=1)
        picks = torch.cat([picks[:, :1], all_pk.gather(2, top_i[..., None].expand(-1, -1, -1, K))], dim=1)
    return scores, picks
