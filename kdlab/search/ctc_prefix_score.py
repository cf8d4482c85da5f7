"""CTC prefix scores for joint CTC/attention decoding (Hori et al. 2017, Algorithm 2), vectorised.

For a prefix g the CTC forward variables over frames t = 0..T are r^n_t(g) (paths ending in a non-blank)
and r^b_t(g) (paths ending in blank), with r_0 = 0 only for the empty prefix (blank path of length 0).
Extending g by c gives h = g + c with

    phi_{t}    = r^b_t(g) ⊕ (r^n_t(g) if c != last(g) else -inf)
    r^n_t(h)   = (r^n_{t-1}(h) ⊕ phi_{t-1}) + x_t(c)
    r^b_t(h)   = (r^b_{t-1}(h) ⊕ r^n_{t-1}(h)) + x_t(blank)
    psi(h)     = ⊕_{t=1..T} phi_{t-1} + x_t(c)      (log prob of all label sequences starting with h)

where ⊕ is log-add and x_t = log p_ctc(·|t). Both recursions are linear in the probability domain, so with
S_t = Σ_{u<=t} x_u(c) they have closed forms r^n_t(h) = S_t + logcumsumexp_{s<=t}(phi_{s-1} - S_{s-1}),
and similarly for r^b. This evaluates all frames, hypotheses and candidates with a handful of tensor ops
(no loop over frames). Prefix scores psi are computed for every pre-beam candidate; the cumulative
forward variables only for the extensions the beam keeps. Work is in float64 with log-probs clamped at
-1e4 so that the cancellation S_t - S_{s-1} stays exact to ~1e-9.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kdlab.tokens import BLANK

LOG_FLOOR = -1.0e4


@dataclass
class PrefixState:
    """CTC state of N prefixes: r_n, r_b (N, T+1) forward variables, psi (N,) prefix score, last (N,)."""

    r_n: torch.Tensor
    r_b: torch.Tensor
    psi: torch.Tensor
    last: torch.Tensor

    def select(self, idx: torch.Tensor) -> PrefixState:
        return PrefixState(self.r_n[idx], self.r_b[idx], self.psi[idx], self.last[idx])


class CTCPrefixScorer:
    """Scores prefix extensions against the CTC posteriors of a batch of utterances.

    logp (A, T, V) CTC log-probs, lens (A,) valid frames. Hypotheses refer to utterances by ``rows``.
    """

    def __init__(self, logp: torch.Tensor, lens: torch.Tensor) -> None:
        A, T, _ = logp.shape
        self.x = logp.detach().double().clamp_min(LOG_FLOOR)  # (A, T, V)
        self.lens = lens.to(logp.device).long()  # (A,)
        self.T = T
        zero = torch.zeros(A, 1, dtype=torch.float64, device=logp.device)
        self.blank_cum = torch.cat([zero, self.x[:, :, BLANK].cumsum(dim=1)], dim=1)  # (A, T+1)
        frames = torch.arange(1, T + 1, device=logp.device)
        self.frame_ok = frames[None, :] <= self.lens[:, None]  # (A, T) frame t=1..T is valid

    def initial(self, rows: torch.Tensor) -> PrefixState:
        """State of the empty prefix (<sos>) for each hypothesis row."""
        N = len(rows)
        r_n = torch.full((N, self.T + 1), float("-inf"), dtype=torch.float64, device=rows.device)
        r_b = self.blank_cum[rows].clone()  # all-blank paths
        psi = torch.zeros(N, dtype=torch.float64, device=rows.device)
        last = torch.full((N,), -1, dtype=torch.long, device=rows.device)
        return PrefixState(r_n, r_b, psi, last)

    def full_score(self, state: PrefixState, rows: torch.Tensor) -> torch.Tensor:
        """log p_ctc(g | H) of each complete prefix (eq 3): r^n_T ⊕ r^b_T at the utterance's last frame."""
        end = self.lens[rows][:, None]  # (N, 1)
        return torch.logaddexp(state.r_n.gather(1, end), state.r_b.gather(1, end)).squeeze(1)

    def _phi(self, state: PrefixState, cand: torch.Tensor) -> torch.Tensor:
        """phi_t (N, P, T+1): paths of g that may be followed by a first emission of c."""
        same = (cand == state.last[:, None])[..., None]  # (N, P, 1) a repeat needs a blank in between
        r_n_g = state.r_n[:, None, :].expand(-1, cand.shape[1], -1)
        return torch.logaddexp(state.r_b[:, None, :], torch.where(same, float("-inf"), r_n_g))

    def prefix_scores(self, state: PrefixState, rows: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """psi(g + c) (N, P) for candidates cand (N, P) of each state row; cheap (no cumulative sums)."""
        xc = self.x[rows[:, None], :, cand]  # (N, P, T)
        emit = self._phi(state, cand)[..., : self.T] + xc  # (N, P, T) first emission of c at frame t
        emit = emit.masked_fill(~self.frame_ok[rows][:, None, :], float("-inf"))
        return torch.logsumexp(emit, dim=-1)

    def advance(
        self, state: PrefixState, rows: torch.Tensor, tok: torch.Tensor, psi: torch.Tensor
    ) -> PrefixState:
        """Forward variables of the chosen extensions g + tok (N,) (state/rows already gathered to them)."""
        T = self.T
        xc = self.x[rows, :, tok]  # (N, T)
        zero = torch.zeros(len(tok), 1, dtype=xc.dtype, device=xc.device)
        S = torch.cat([zero, xc.cumsum(dim=-1)], dim=-1)  # (N, T+1)
        phi = self._phi(state, tok[:, None])[:, 0]  # (N, T+1)
        ninf = torch.full_like(zero, float("-inf"))
        r_n = torch.cat([ninf, S[:, 1:] + torch.logcumsumexp(phi[:, :T] - S[:, :T], dim=-1)], dim=-1)
        bc = self.blank_cum[rows]  # (N, T+1)
        r_b = torch.cat([ninf, bc[:, 1:] + torch.logcumsumexp(r_n[:, :T] - bc[:, :T], dim=-1)], dim=-1)
        return PrefixState(r_n, r_b, psi, tok)
