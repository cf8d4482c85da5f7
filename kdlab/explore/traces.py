"""Search traces as table rows, and decoder-call counts: Algorithm 1 (Mask-CTC beam) vs the AR joint beam.

Rows are plain dicts (``pandas.DataFrame(rows)`` shows them); hypotheses are written with their pieces,
``▁`` as a space and every ``<mask>`` as ``MASK_MARK``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kdlab.explore.model import LoadedModel
from kdlab.search.types import AttentionBeamTrace, Hyp, MaskBeamTrace
from kdlab.tokens import MASK

MASK_MARK = "■"


def vocabulary(m: LoadedModel) -> list[str]:
    """Readable piece of every token id (index = id), for figures that label tokens."""
    return [m.piece(i) for i in range(m.tokenizer.vocab_size)]


def show(tokens: list[int], vocab: list[str]) -> str:
    """Pieces joined into text, ``<mask>`` as ``MASK_MARK`` (so the masks stay visible)."""
    return "".join(MASK_MARK if t == MASK else vocab[t] for t in tokens).replace("▁", " ").strip()


def mask_beam_rows(trace: MaskBeamTrace, vocab: list[str]) -> list[dict[str, object]]:
    """Algorithm 1 as a table: iteration 0 is Ω₀ = {ŷ_obs⁰} (greedy CTC with its masks); row (i, r) is the
    r-th hypothesis of Ω₀ after iteration i, with its parent's rank, the positions it filled and its score
    (the accumulated eq 5 log posterior)."""
    start = [MASK if m else t for t, m in zip(trace.ctc_tokens, trace.initial_mask, strict=True)]
    rows: list[dict[str, object]] = [{"iteration": 0, "rank": 0, "k": 0, "parent": None,
                                      "hypothesis": show(start, vocab), "filled": "", "masks left": start.count(MASK),
                                      "score": 0.0}]
    for i, it in enumerate(trace.iterations, start=1):
        for r, h in enumerate(it.beam):
            filled = ", ".join(f"{p}:{vocab[t]}" for p, t in sorted(h.chosen))
            rows.append({"iteration": i, "rank": r, "k": it.k, "parent": h.parent, "hypothesis": show(h.tokens, vocab),
                         "filled": filled, "masks left": h.tokens.count(MASK), "score": round(h.score, 4)})
    return rows


def ar_beam_rows(trace: AttentionBeamTrace, vocab: list[str], max_steps: int | None = None) -> list[dict[str, object]]:
    """The AR joint beam search per step: each running hypothesis (joint, attention and CTC prefix scores) and
    each hypothesis that ended with ``<eos>`` at that step."""
    rows: list[dict[str, object]] = []
    for s in trace.steps[:max_steps]:
        for r, (ys, score, att, ctc) in enumerate(s.running):
            rows.append({"step": s.step, "rank": r, "state": "running", "hypothesis": show(ys, vocab),
                         "last piece": vocab[ys[-1]] if ys else "", "joint score": round(score, 3),
                         "att": round(att, 3), "ctc prefix": round(ctc, 3)})
        for ys, score in s.ended:
            rows.append({"step": s.step, "rank": None, "state": "ended <eos>", "hypothesis": show(ys, vocab),
                         "last piece": "<eos>", "joint score": round(score, 3), "att": None, "ctc prefix": None})
    return rows


@dataclass
class DecoderCalls:
    """Decoder calls for one utterance: NAR CMLM calls vs AR decoder steps."""

    n_mask: int  # masked tokens after greedy CTC (N of Algorithm 1)
    K: int  # tokens filled per iteration
    cmlm_calls: int  # iterations in the trace (one batched CMLM call each, whatever B)
    ar_tokens: int  # tokens of the AR 1-best
    ar_steps: int  # decoder steps the AR search ran (one batched call each)

    @property
    def cmlm_expected(self) -> int:
        """⌈N_mask / K⌉ (Algorithm 1, line 4)."""
        return math.ceil(self.n_mask / self.K)

    @property
    def ar_needed(self) -> int:
        """One step per output token plus one for ``<eos>``: the fewest steps that produce the 1-best."""
        return self.ar_tokens + 1

    def row(self) -> dict[str, int]:
        """The counts as one table row."""
        return {"masks N": self.n_mask, "K": self.K, "CMLM calls (trace)": self.cmlm_calls,
                "⌈N/K⌉": self.cmlm_expected, "AR tokens": self.ar_tokens, "AR tokens + 1": self.ar_needed,
                "AR steps run (trace)": self.ar_steps}

    def bars(self) -> tuple[list[str], list[int]]:
        """Labels and counts for :func:`kdlab.viz.beams.decoder_calls_plot`."""
        return ([f"NAR: CMLM calls ({self.n_mask} masks, K={self.K})", "AR: tokens of the 1-best + <eos>",
                 "AR: steps the search ran"], [self.cmlm_calls, self.ar_needed, self.ar_steps])


def decoder_calls(mask_trace: MaskBeamTrace, K: int, ar_best: Hyp, ar_trace: AttentionBeamTrace) -> DecoderCalls:
    """Count the decoder calls of both searches from their traces (same utterance)."""
    return DecoderCalls(sum(mask_trace.initial_mask), K, len(mask_trace.iterations), len(ar_best.tokens),
                        len(ar_trace.steps))
