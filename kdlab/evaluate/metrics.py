"""Error rates with substitution / insertion / deletion counts, token alignment, real-time factor.

The paper (Table 1) reports the total error rate (CER on AISHELL-1, WER on LibriSpeech) and, separately,
"I+D": insertions plus deletions, the length errors that NAR models suffer from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import editdistance

from kdlab.errors import UserError

CORRECT, SUB, INS, DEL = "C", "S", "I", "D"
UNITS = ("char", "word")

AlignOp = tuple[str, str | None, str | None]


def tokens_for_unit(text: str, unit: str) -> list[str]:
    """Scoring units of a transcript: ``char`` → characters without spaces (CER), ``word`` → words (WER)."""
    if unit == "char":
        return [ch for ch in text if not ch.isspace()]
    if unit == "word":
        return text.split()
    raise ValueError(f"unknown unit {unit!r}; expected one of {UNITS}")


def _cost_table(ref: Sequence[str], hyp: Sequence[str]) -> tuple[list[list[int]], int]:
    """Levenshtein table over ref[:i] → hyp[:j] with cost = edits · W + (insertions + deletions).

    W exceeds any possible I + D count, so the table minimises edits first and, among minimum-edit
    alignments, prefers substitutions over insertion/deletion pairs. Returns (table, W).
    """
    w = len(ref) + len(hyp) + 1
    d = [[j * (w + 1) for j in range(len(hyp) + 1)]]
    for i in range(1, len(ref) + 1):
        row = [i * (w + 1)] + [0] * len(hyp)
        prev = d[i - 1]
        for j in range(1, len(hyp) + 1):
            diag = prev[j - 1] + w * (ref[i - 1] != hyp[j - 1])
            row[j] = min(diag, prev[j] + w + 1, row[j - 1] + w + 1)
        d.append(row)
    return d, w


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[AlignOp]:
    """Minimum-edit alignment as ``(op, ref_token, hyp_token)``, op in C/S/I/D (I has ref None, D hyp None).

    Among alignments with the fewest edits it takes one with the most substitutions (fewest I + D); the
    remaining ties are broken the same way every time: diagonal, then deletion, then insertion.
    """
    d, w = _cost_table(ref, hyp)
    ops: list[AlignOp] = []
    i, j = len(ref), len(hyp)
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + w * (ref[i - 1] != hyp[j - 1]):
            ops.append((CORRECT if ref[i - 1] == hyp[j - 1] else SUB, ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + w + 1:
            ops.append((DEL, ref[i - 1], None))
            i -= 1
        else:
            ops.append((INS, None, hyp[j - 1]))
            j -= 1
    ops.reverse()
    return ops


@dataclass(frozen=True)
class ErrorStats:
    """Edit counts over one or more utterances; add them up with ``+`` or ``sum(...)``.

    Rates are percentages of the number of reference tokens (``n_ref``). Utterances with an empty reference
    are not scored (no rate exists for them) but counted in ``empty_refs``.
    """

    n_ref: int = 0
    sub: int = 0
    ins: int = 0
    dele: int = 0
    n_utts: int = 0
    n_utts_err: int = 0
    empty_refs: int = 0  # utterances not scored: no reference token (counted skip, docs/BAD_INPUT.md)

    @property
    def errors(self) -> int:
        return self.sub + self.ins + self.dele

    @property
    def rate(self) -> float:
        """(S + I + D) / N in percent: the paper's CER/WER column 'A'."""
        return _percent(self.errors, self.n_ref)

    @property
    def i_plus_d(self) -> float:
        """(I + D) / N in percent: the paper's 'I+D' column."""
        return _percent(self.ins + self.dele, self.n_ref)

    def __add__(self, other: ErrorStats) -> ErrorStats:
        if not isinstance(other, ErrorStats):
            return NotImplemented
        return ErrorStats(self.n_ref + other.n_ref, self.sub + other.sub, self.ins + other.ins,
                          self.dele + other.dele, self.n_utts + other.n_utts,
                          self.n_utts_err + other.n_utts_err, self.empty_refs + other.empty_refs)

    def __radd__(self, other: object) -> ErrorStats:
        if other == 0:  # lets sum() start from 0
            return self
        return NotImplemented  # type: ignore[return-value]


def _percent(num: int, den: int) -> float:
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return 100.0 * num / den


def stats_from_alignment(ops: Sequence[AlignOp]) -> ErrorStats:
    """Count S/I/D of one utterance's alignment."""
    n = {op: 0 for op in (CORRECT, SUB, INS, DEL)}
    for op, _, _ in ops:
        n[op] += 1
    errs = n[SUB] + n[INS] + n[DEL]
    return ErrorStats(n[CORRECT] + n[SUB] + n[DEL], n[SUB], n[INS], n[DEL], 1, int(errs > 0))


def utterance_stats(ref: Sequence[str], hyp: Sequence[str]) -> ErrorStats:
    """One utterance's counts; ``editdistance`` decides first, the alignment only runs when needed."""
    dist = editdistance.eval(ref, hyp)
    if dist == 0:
        return ErrorStats(len(ref), 0, 0, 0, 1, 0)
    if not ref or not hyp:
        return ErrorStats(len(ref), 0, len(hyp), len(ref), 1, 1)
    stats = stats_from_alignment(align(ref, hyp))
    if stats.errors != dist:  # two independent computations must agree
        raise RuntimeError(f"alignment found {stats.errors} edits but editdistance {dist}: {ref} / {hyp}")
    return stats


class EmptyReferenceError(UserError, ValueError):
    """A reference with no scoring unit, where strict scoring asks for an error; the message names it."""


def error_rate(refs: Sequence[str], hyps: Sequence[str], unit: str = "char", *,
               ids: Sequence[str] | None = None, strict: bool = False) -> ErrorStats:
    """Corpus CER (``unit="char"``) or WER (``unit="word"``) with S/I/D counts over transcript strings.

    An empty reference (no character / word) is skipped and counted in ``empty_refs``; with ``strict`` it
    is an :class:`EmptyReferenceError` naming the utterance (``ids[i]``, else its index).
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = ErrorStats()
    for i, (ref, hyp) in enumerate(zip(refs, hyps, strict=True)):
        ref_units = tokens_for_unit(ref, unit)
        if not ref_units:
            if strict:
                name = ids[i] if ids is not None else f"#{i}"
                raise EmptyReferenceError(f"utterance {name}: empty reference transcript, cannot be scored")
            total = total + ErrorStats(empty_refs=1)
            continue
        total = total + utterance_stats(ref_units, tokens_for_unit(hyp, unit))
    return total


def rtf(decode_seconds: float, audio_seconds: float) -> float:
    """Real-time factor: processing time divided by audio duration (Table 3 reports it per test set)."""
    if audio_seconds <= 0:
        raise ValueError(f"audio duration must be positive, got {audio_seconds}")
    if decode_seconds < 0:
        raise ValueError(f"decode time must be non-negative, got {decode_seconds}")
    return decode_seconds / audio_seconds
