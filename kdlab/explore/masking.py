"""Mask-CTC's masks and easy-first fills as plain data (eq 4-5): which greedy-CTC tokens a threshold
masks, and per iteration which positions the CMLM fills, with which tokens and probabilities."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch

from kdlab.evaluate.metrics import CORRECT, ErrorStats, align, error_rate
from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import Outputs, run_encoder
from kdlab.explore.scoring import normalized
from kdlab.explore.searches import maskctc
from kdlab.explore.utterance import Utterance
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


def iterations_needed(n_masked: int, K: int) -> int:
    """Easy-first iterations (CMLM calls) to fill ``n_masked`` masks ``K`` at a time: ⌈N/K⌉ (eq 5)."""
    if K < 1:
        raise ValueError(f"K must be at least 1, got {K}")
    return math.ceil(n_masked / K)


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


# ---------------------------------------------------------------- what the filling changed (computed claims)
class Change(NamedTuple):
    """A masked position after the CMLM's filling: greedy CTC's piece ``before``, the filled piece ``after``, and
    whether each is correct in the minimum-edit alignment of its sequence's pieces against the reference's."""

    position: int
    before: str
    after: str
    was_right: bool
    now_right: bool


def token_correct(m: LoadedModel, text: str, tokens: Sequence[int]) -> list[bool]:
    """Per decoded token: is it correct (C) in the minimum-edit alignment of the pieces against the reference's
    pieces (:func:`kdlab.evaluate.metrics.align`)?"""
    ops = align(m.pieces(m.tokenizer.encode(text)), m.pieces(list(tokens)))
    return [op == CORRECT for op, _, hyp in ops if hyp is not None]


def mask_changes(m: LoadedModel, text: str, trace: MaskCTCTrace) -> list[Change]:
    """Every masked position whose token the CMLM changed (eq 4-5), with its correctness before and after."""
    final = final_tokens(trace)
    before, after = token_correct(m, text, trace.ctc_tokens), token_correct(m, text, final)
    return [Change(p, m.piece(trace.ctc_tokens[p]), m.piece(final[p]), before[p], after[p])
            for p, hide in enumerate(trace.initial_mask) if hide and final[p] != trace.ctc_tokens[p]]


def repairs(changes: Sequence[Change]) -> list[Change]:
    """Changes that turn a wrong greedy-CTC token into a correct one."""
    return [c for c in changes if not c.was_right and c.now_right]


def breakages(changes: Sequence[Change]) -> list[Change]:
    """Changes that turn a correct greedy-CTC token into a wrong one."""
    return [c for c in changes if c.was_right and not c.now_right]


def changes_line(changes: Sequence[Change]) -> str:
    """One printed line: how many masked tokens the CMLM changed, which became right and which became wrong."""
    def listed(cs: Sequence[Change]) -> str:
        return ", ".join(f"@{c.position} {c.before!r} → {c.after!r}" for c in cs) or "none"

    return (f"the CMLM changed {len(changes)} masked token(s); wrong → right: {listed(repairs(changes))}; "
            f"right → wrong: {listed(breakages(changes))}")


def unmasked_changed(trace: MaskCTCTrace) -> int:
    """Positions that were not masked but differ after the filling (0 by eq 4-5: only masks are filled)."""
    final = final_tokens(trace)
    return sum(not hide and a != b for a, b, hide in zip(trace.ctc_tokens, final, trace.initial_mask, strict=True))


def word_errors(m: LoadedModel, text: str, tokens: Sequence[int]) -> ErrorStats:
    """S, I, D of one decoded sequence against the reference, in the model's scoring unit (words in English)."""
    return error_rate([normalized(m, text)], [m.text(list(tokens))], m.unit)


def length_line(m: LoadedModel, text: str, trace: MaskCTCTrace) -> str:
    """One printed line: token counts before and after the filling, tokens changed outside the masks, and the
    S/I/D counts of greedy CTC and Mask-CTC with the verdict whether I + D moved."""
    final = final_tokens(trace)
    a, b = word_errors(m, text, trace.ctc_tokens), word_errors(m, text, final)
    moved = "yes" if (a.ins, a.dele) != (b.ins, b.dele) else "no"
    return (f"tokens: greedy CTC {len(trace.ctc_tokens)}, Mask-CTC {len(final)}; changed outside the masks: "
            f"{unmasked_changed(trace)}. {m.unit}s vs reference: greedy CTC S={a.sub} I={a.ins} D={a.dele}, "
            f"Mask-CTC S={b.sub} I={b.ins} D={b.dele}; {m.unit}-level I or D changed: {moved}")


# ---------------------------------------------------------------- the exercises' solutions, computed
class Setting(NamedTuple):
    """One Mask-CTC decoding of an utterance at ``p_thr`` and ``K``: masks, iterations, errors, hypothesis."""

    p_thr: float
    K: int
    n_masked: int
    iterations: int
    errors: ErrorStats
    hypothesis: str


def decode_settings(m: LoadedModel, out: Outputs, text: str,
                    settings: Sequence[tuple[float, int]]) -> list[Setting]:
    """Easy-first Mask-CTC (eq 4-5) of one encoded utterance at each ``(p_thr, K)``, scored against ``text``."""
    rows = []
    for p_thr, K in settings:
        tokens, trace = maskctc(m, out, p_thr=p_thr, K=K)
        rows.append(Setting(p_thr, K, sum(trace.initial_mask), len(trace.iterations), word_errors(m, text, tokens),
                            m.text(tokens)))
    return rows


def settings_lines(rows: Sequence[Setting]) -> list[str]:
    """One printed line per setting, then the verdicts: does the error rate move, does the hypothesis change?"""
    lines = [f"p_thr = {r.p_thr:g}, K = {r.K}: {r.n_masked} masks, {r.iterations} iterations, "
             f"{r.errors.errors} errors ({r.errors.rate:.1f} %): {r.hypothesis}" for r in rows]
    lines.append(f"the error rate moves: {'yes' if len({r.errors.errors for r in rows}) > 1 else 'no'}; "
                 f"the hypothesis changes: {'yes' if len({r.hypothesis for r in rows}) > 1 else 'no'}")
    return lines


class StudentSummary(NamedTuple):
    """A student over a set: mean greedy-CTC token confidence, share of tokens masked at ``p_thr``, and the
    errors of greedy CTC and of Mask-CTC (eq 4-5)."""

    name: str
    confidence: float
    masked: float
    greedy: ErrorStats
    maskctc: ErrorStats


def student_summary(m: LoadedModel, utts: Sequence[Utterance], p_thr: float, K: int) -> StudentSummary:
    """:class:`StudentSummary` of one student on ``utts``."""
    confs: list[float] = []
    masked, g, f = 0, ErrorStats(), ErrorStats()
    for u in utts:
        tokens, trace = maskctc(m, run_encoder(m, u), p_thr=p_thr, K=K)
        confs += trace.confidences
        masked += sum(trace.initial_mask)
        g, f = g + word_errors(m, u.text, trace.ctc_tokens), f + word_errors(m, u.text, tokens)
    return StudentSummary(m.name, sum(confs) / max(len(confs), 1), masked / max(len(confs), 1), g, f)


def students_lines(a: StudentSummary, b: StudentSummary) -> list[str]:
    """One line per student and the verdicts: who has the higher mean confidence, who masks fewer tokens at the
    threshold, who ends with fewer errors."""
    lines = [f"{s.name}: mean token confidence {s.confidence:.3f}, {s.masked:.0%} of tokens masked; "
             f"greedy CTC {s.greedy.rate:.1f} %, Mask-CTC {s.maskctc.rate:.1f} %" for s in (a, b)]
    def which(x: float, y: float) -> str:  # the student with the lower value (a tie: neither)
        return a.name if x < y else b.name if y < x else "neither (a tie)"

    return lines + [f"higher mean confidence: {which(-a.confidence, -b.confidence)}; fewer tokens masked: "
                    f"{which(a.masked, b.masked)}; fewer errors after Mask-CTC: "
                    f"{which(a.maskctc.errors, b.maskctc.errors)}"]


def kept_lines(m: LoadedModel, text: str, trace: MaskCTCTrace) -> list[str]:
    """Masked tokens that greedy CTC got right (token alignment against the reference): did the CMLM keep them?"""
    final, right = final_tokens(trace), token_correct(m, text, trace.ctc_tokens)
    cases = [p for p, hide in enumerate(trace.initial_mask) if hide and right[p]]
    if not cases:
        return ["no masked token was right after greedy CTC in this utterance"]
    lines = [f"@{p} {m.piece(trace.ctc_tokens[p])!r}: "
             + ("kept" if final[p] == trace.ctc_tokens[p] else f"changed to {m.piece(final[p])!r}") for p in cases]
    kept = sum(final[p] == trace.ctc_tokens[p] for p in cases)
    return lines + [f"{len(cases)} masked tokens were right after greedy CTC; the CMLM kept {kept}"]
