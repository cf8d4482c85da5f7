"""Joint CTC/attention one-pass beam search for the AR model (Hori et al. 2017; paper Sec. 4.2).

Every hypothesis y is scored with

    score(y) = (1 - λ) · log p_ar(y | H) + λ · log p_ctc(y | H)        λ = ctc_weight (0.3 in the paper)

where p_ar is eq 2 (including <eos>) and, for unfinished prefixes, the CTC term is the prefix score
psi (probability of all label sequences that start with the prefix). All utterances × beams of a batch
share one decoder call per step; CTC prefix scores are computed only for a pre-beam of the
``pre_beam_ratio · beam`` best attention candidates of each hypothesis.

When does a hypothesis end? Two rules (``end_rule``):

* ``"beam"`` (default; ESPnet's ``BeamSearch``, the toolkit the paper used): each step keeps the B best
  of all expansions of the running hypotheses, ``<eos>`` included; an expansion by ``<eos>`` that makes the
  B best ends there and leaves the beam, so ``<eos>`` competes with the other tokens for the B slots and
  the running beam shrinks by the hypotheses that ended.
* ``"exact"``: every ``<eos>`` candidate of the pre-beam ends at once, and the B running slots go to the
  best non-``<eos>`` expansions. No ended hypothesis is lost to the beam's width, so the returned 1-best
  scores at least as high as the beam rule's; with a weak decoder that prefers an early ``<eos>`` it can
  be a *shorter* hypothesis with a higher model score and a worse transcript (a model error made visible
  by a better search).

Both score parts only decrease as a hypothesis grows, so under either rule the search stops an utterance
exactly when it holds ``nbest`` ended hypotheses and its best running hypothesis scores below the worst
of them (running on could not change the result), or when no hypothesis runs; a running hypothesis is
forced to end at ``maxlen`` = ``maxlen_ratio · T'`` tokens, and <eos> is barred at the first step so no
output is empty.

For sequence-level distillation (eq 9) use ``Hyp.score`` as log P(ŷ): it is the joint score the teacher
ranked its N-best by; ``Hyp.att_score`` (pure eq 2) and ``Hyp.ctc_score`` (eq 3) are kept beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from kdlab.nn.decoder import select_cache
from kdlab.search.ctc_prefix_score import CTCPrefixScorer
from kdlab.search.types import AttentionBeamTrace, BeamStep, Hyp
from kdlab.tokens import BLANK, MASK, SOS_EOS

# (ys (N, l), rows (N,), cache) -> (log-probs (N, V), cache); rows = utterance index of each hypothesis.
# The cache is reordered with kdlab.nn.decoder.select_cache (tensors with the hypotheses on dim 0).
StepFn = Callable[[torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Any]]
NEG_INF = float("-inf")
END_RULES = ("beam", "exact")  # <eos> competes for the beam (ESPnet, default) | every <eos> candidate ends


class _Beam:
    """Running hypotheses of the active utterances: A utterances × W slots, flattened to N = A·W rows."""

    def __init__(self, utts: torch.Tensor, W: int, scorer: CTCPrefixScorer | None) -> None:
        dev = utts.device
        self.utts = utts  # (A,) original utterance index of each active utterance
        self.W = W
        self.rows = utts.repeat_interleave(W)  # (N,)
        N = len(self.rows)
        self.ys = torch.full((N, 1), SOS_EOS, dtype=torch.long, device=dev)
        self.score = torch.full((N,), NEG_INF, dtype=torch.float64, device=dev)
        self.score[::W] = 0.0  # one live hypothesis (<sos>) per utterance at the start
        self.att = torch.zeros(N, dtype=torch.float64, device=dev)
        self.ctc = scorer.initial(self.rows) if scorer is not None else None
        self.cache: Any = None

    def select(self, idx: torch.Tensor, new_tok: torch.Tensor | None = None) -> None:
        """Keep hypotheses ``idx`` (N',), optionally extended by ``new_tok`` (N',)."""
        self.rows = self.rows[idx]
        self.ys = self.ys[idx] if new_tok is None else torch.cat([self.ys[idx], new_tok[:, None]], dim=1)
        self.score, self.att = self.score[idx], self.att[idx]
        # rows stay in runs of W hypotheses per utterance: the decoder keeps its encoder keys once per run
        self.cache = select_cache(self.cache, idx, group=self.W)


def _step_scores(
    beam: _Beam, logp_att: torch.Tensor, scorer: CTCPrefixScorer | None, P: int, lam: float,
    step: int, maxlen: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Pre-beam the attention candidates and add CTC prefix scores.

    Returns candidates, attention log-probs, CTC prefix scores and joint scores, all (N, P).
    """
    logp = logp_att.double().clone()  # (N, V)
    logp[:, [BLANK, MASK]] = NEG_INF
    if step == 0:
        logp[:, SOS_EOS] = NEG_INF  # minimum length 1
    at_max = maxlen[beam.rows] <= step  # (N,) only <eos> allowed now
    keep_eos = logp[:, SOS_EOS].clone()
    logp[at_max] = NEG_INF
    logp[at_max, SOS_EOS] = keep_eos[at_max]
    att_val, cand = logp.topk(P, dim=-1)  # (N, P)
    if scorer is None:
        return cand, att_val, torch.zeros_like(att_val), beam.score[:, None] + att_val
    psi = scorer.prefix_scores(beam.ctc, beam.rows, cand)
    full = scorer.full_score(beam.ctc, beam.rows)  # (N,) CTC score if the prefix ends here
    psi = torch.where(cand == SOS_EOS, full[:, None], psi)
    ctc_inc = psi - beam.ctc.psi[:, None]
    total = beam.score[:, None] + (1 - lam) * att_val + lam * ctc_inc
    total = total.masked_fill(torch.isnan(total), NEG_INF)  # dead slots: -inf - -inf
    return cand, att_val, psi, total


def _collect_ended(
    ended: list[list[Hyp]], beam: _Beam, ends: torch.Tensor, cand: torch.Tensor, att_val: torch.Tensor,
    psi: torch.Tensor, total: torch.Tensor, nbest: int, lam: float,
) -> list[list[tuple[list[int], float]]]:
    """Move the <eos> candidates ``ends`` (N, P) bool into their utterances' (capped) ended lists."""
    hit = ends.nonzero(as_tuple=False)  # (E, 2)
    new: dict[int, list[tuple[list[int], float]]] = {}
    if len(hit):
        slot, p = hit[:, 0], hit[:, 1]
        rows, toks = beam.rows[slot].tolist(), beam.ys[slot, 1:].tolist()
        tot, att = total[slot, p].tolist(), (beam.att[slot] + att_val[slot, p]).tolist()
        ctc = psi[slot, p].tolist() if lam > 0 else [float("nan")] * len(rows)
        for u, y, s, a, c in zip(rows, toks, tot, att, ctc, strict=True):
            ended[u].append(Hyp(y, s, a, c))
            new.setdefault(u, []).append((y, s))
        for u in new:
            ended[u] = sorted(ended[u], key=lambda h: h.score, reverse=True)[:nbest]
    return [new.get(u, []) for u in beam.utts.tolist()]


def joint_beam_search(
    ctc_logp: torch.Tensor, lens: torch.Tensor, step_fn: StepFn, beam: int = 10,
    ctc_weight: float = 0.3, nbest: int | None = None, pre_beam_ratio: float = 1.5,
    maxlen_ratio: float = 1.0, trace: bool = False, end_rule: str = "beam",
) -> list[list[Hyp]] | tuple[list[list[Hyp]], list[AttentionBeamTrace]]:
    """Batched joint CTC/attention beam search.

    ctc_logp (B, T', V) CTC log-probs, lens (B,) encoder lengths, ``step_fn(ys, rows, cache)`` the
    decoder's incremental step for hypotheses ``ys`` (N, l) (starting with <sos>) of utterances ``rows``;
    ``end_rule`` "beam" (ESPnet's) or "exact" (module docstring).
    Returns per utterance up to ``nbest`` (default ``beam``) hypotheses, best first, without <sos>/<eos>.
    """
    if not 0.0 <= ctc_weight <= 1.0:
        raise ValueError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if end_rule not in END_RULES:
        raise ValueError(f"end_rule must be one of {', '.join(END_RULES)}, got {end_rule!r}")
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    B, _, V = ctc_logp.shape
    nbest = nbest or beam
    W, dev = beam, ctc_logp.device
    P = max(1, min(int(pre_beam_ratio * W) if ctc_weight > 0 else W, V - 2))
    scorer = CTCPrefixScorer(ctc_logp, lens) if ctc_weight > 0 else None
    maxlen = (lens.to(dev).double() * maxlen_ratio).long().clamp_min(1)  # (B,)
    st = _Beam(torch.arange(B, device=dev), W, scorer)
    ended: list[list[Hyp]] = [[] for _ in range(B)]
    traces = [AttentionBeamTrace() for _ in range(B)] if trace else []
    step = 0
    while len(st.utts):
        logp_att, st.cache = step_fn(st.ys, st.rows, st.cache)
        cand, att_val, psi, total = _step_scores(st, logp_att, scorer, P, ctc_weight, step, maxlen)
        top_val, slot, pidx, ends = _select(cand, total, len(st.utts), W, P, end_rule)
        new_ended = _collect_ended(ended, st, ends, cand, att_val, psi, total, nbest, ctc_weight)
        parent_ctc = st.ctc.select(slot) if scorer is not None else None
        st.select(slot, cand[slot, pidx])
        st.score, st.att = top_val.flatten(), st.att + att_val[slot, pidx]
        if scorer is not None:
            st.ctc = scorer.advance(parent_ctc, st.rows, st.ys[:, -1], psi[slot, pidx])
        if trace:
            _record(traces, st, step, new_ended, W)
        step += 1
        _drop_finished(st, ended, top_val.max(dim=-1).values.tolist(), nbest, W)
    return (_finalize(ended), traces) if trace else _finalize(ended)


def _select(cand: torch.Tensor, total: torch.Tensor, A: int, W: int, P: int,
            end_rule: str) -> tuple[torch.Tensor, ...]:
    """The beam's next W slots per utterance and the <eos> candidates that end this step.

    cand, total (N, P) with N = A·W. Returns the new slots' scores (A, W) (-inf where a slot ended or is
    empty), their parent rows and pre-beam columns (N,) each, and the ending candidates ``ends`` (N, P).
    """
    is_eos = cand == SOS_EOS  # (N, P)
    pool = total.masked_fill(is_eos, NEG_INF) if end_rule == "exact" else total
    top_val, top_idx = pool.view(A, W * P).topk(W, dim=-1)  # (A, W)
    slot = (torch.arange(A, device=cand.device)[:, None] * W + top_idx // P).flatten()  # (N,)
    pidx = (top_idx % P).flatten()
    if end_rule == "exact":
        return top_val, slot, pidx, is_eos & torch.isfinite(total)
    won = is_eos[slot, pidx] & torch.isfinite(top_val.flatten())  # (N,) <eos> took a beam slot
    ends = torch.zeros_like(is_eos)
    ends[slot[won], pidx[won]] = True
    return top_val.masked_fill(won.view(A, W), NEG_INF), slot, pidx, ends


def _drop_finished(st: _Beam, ended: list[list[Hyp]], best_running: list[float], nbest: int, W: int) -> None:
    """Remove utterances whose running beam is empty or can no longer enter their N-best."""
    keep = []
    for a, u in enumerate(st.utts.tolist()):
        full = len(ended[u]) >= nbest and best_running[a] <= ended[u][-1].score
        keep.append(not (full or best_running[a] == NEG_INF))
    if all(keep):
        return
    keep_t = torch.tensor(keep, device=st.utts.device)
    st.utts = st.utts[keep_t]
    idx = keep_t.repeat_interleave(W).nonzero().squeeze(1)
    st.select(idx)
    if st.ctc is not None:
        st.ctc = st.ctc.select(idx)


def _record(traces: list[AttentionBeamTrace], st: _Beam, step: int, new_ended: list, W: int) -> None:
    ys, sc, att = st.ys[:, 1:].tolist(), st.score.tolist(), st.att.tolist()
    psi = st.ctc.psi.tolist() if st.ctc is not None else [float("nan")] * len(sc)
    for a, u in enumerate(st.utts.tolist()):
        running = [(ys[i], sc[i], att[i], psi[i]) for i in range(a * W, (a + 1) * W) if sc[i] > NEG_INF]
        traces[u].steps.append(BeamStep(step, running, new_ended[a]))


def _finalize(ended: list[list[Hyp]]) -> list[list[Hyp]]:
    out = []
    for hyps in ended:
        out.append(hyps if hyps else [Hyp([], NEG_INF, NEG_INF, NEG_INF)])
    return out
