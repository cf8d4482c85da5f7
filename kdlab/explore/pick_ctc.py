"""Default examples of notebooks 01 and 02, chosen by computation over a check set so that they show the point.

01 needs an utterance whose greedy CTC path (each frame's argmax, then η of eq 3) differs from the forced
alignment of its reference (the best path inside η⁻¹(y)); 02 needs one where the CMLM repairs a token: a
masked greedy-CTC token that is wrong and that the easy-first filling (eq 4-5) makes right. Every picker
returns a :class:`Pick` with one printed line; when no utterance qualifies the line says "no such case in this
set" and the notebook falls back to the first utterance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdlab.explore.masking import breakages, mask_changes, repairs
from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import run_encoder
from kdlab.explore.searches import maskctc
from kdlab.explore.segments import (
    blank_near_misses,
    blank_share,
    ctc_view,
    distance_to_segments,
    frame_tokens,
    mean_entropy,
    near_miss_lines,
    path_differences,
)
from kdlab.explore.utterance import Utterance

NO_CASE = "no such case in this set"


@dataclass(frozen=True)
class Pick:
    """The chosen utterance (``index`` into the set, None when none qualifies) and the line that says why."""

    index: int | None
    line: str

    @property
    def found(self) -> bool:
        return self.index is not None


def chosen_index(index: int | None, pick: Pick) -> int:
    """The utterance a notebook shows: ``index`` when the reader set one, else the pick (else the first)."""
    if index is not None:
        return index
    return pick.index if pick.index is not None else 0


def _best(scores: Sequence[tuple[int, ...] | None]) -> int | None:
    """Index of the highest score (ties: the first); None when no score is positive or all are None."""
    ranked = [(s, -i) for i, s in enumerate(scores) if s is not None and s[0] > 0]
    return -max(ranked)[1] if ranked else None


# ---------------------------------------------------------------- 01: greedy path vs forced alignment (eq 3)
def path_disagreement(m: LoadedModel, utt: Utterance) -> tuple[list[int], int] | None:
    """``(frames where the greedy path and the forced path differ, frame count)``; None when the reference
    has no alignment (more tokens than the frames allow)."""
    v = ctc_view(m, utt)
    if not v.segments and v.ref_tokens:
        return None
    return path_differences(v.path.frame_ids, frame_tokens(v.segments, v.n_frames)), v.n_frames


def pick_greedy_vs_forced(m: LoadedModel, utts: Sequence[Utterance]) -> Pick:
    """The utterance whose greedy CTC path differs from its forced-alignment path on the most frames."""
    found = [path_disagreement(m, u) for u in utts]
    i = _best([(len(f[0]),) if f is not None else None for f in found])
    if i is None:
        return Pick(None, f"{NO_CASE}: on all {len(utts)} utterances the greedy path equals the forced path; "
                          "showing the first")
    differ, n = found[i]  # type: ignore[misc]
    return Pick(i, f"chosen by computation: {utts[i].id} (index {i}), where the greedy and forced paths differ on "
                   f"{len(differ)} of {n} frames, the most of the {len(utts)} utterances")


def disagreement_share(m: LoadedModel, utts: Sequence[Utterance]) -> float:
    """Share of all frames of a set (alignable utterances) where the greedy and forced paths differ."""
    found = [f for f in (path_disagreement(m, u) for u in utts) if f is not None]
    return sum(len(d) for d, _ in found) / max(sum(n for _, n in found), 1)


# ---------------------------------------------------------------- 02: a token the CMLM repairs (eq 4-5)
def repair_counts(m: LoadedModel, utt: Utterance, p_thr: float, K: int) -> tuple[int, int]:
    """``(repaired, broken)``: masked tokens of one utterance's easy-first Mask-CTC decoding that the CMLM turns
    from wrong to right, and from right to wrong."""
    _, trace = maskctc(m, run_encoder(m, utt), p_thr=p_thr, K=K)
    changes = mask_changes(m, utt.text, trace)
    return len(repairs(changes)), len(breakages(changes))


def pick_repair(m: LoadedModel, utts: Sequence[Utterance], p_thr: float = 0.99, K: int = 2) -> Pick:
    """The utterance where the CMLM turns the most wrong masked tokens right (net of the right ones it turns
    wrong; ties: the most repairs, then the first), at threshold ``p_thr`` and ``K`` fills per iteration."""
    counts = [repair_counts(m, u, p_thr, K) for u in utts]
    i = _best([(1, fixed - broken, fixed) if fixed else None for fixed, broken in counts])
    if i is None:
        return Pick(None, f"{NO_CASE}: the CMLM repairs no token at p_thr = {p_thr:g}, K = {K} on any of the "
                          f"{len(utts)} utterances; showing the first")
    fixed, broken = counts[i]
    return Pick(i, f"chosen by computation: {utts[i].id} (index {i}), where the CMLM turns {fixed} wrong masked "
                   f"token(s) right and {broken} right one(s) wrong, the best of the {len(utts)} utterances")


# ---------------------------------------------------------------- whole-set statistics (the exercises' solutions)
@dataclass(frozen=True)
class SetStats:
    """Over a set's frames: ``blank_top`` share where blank is the argmax, ``differ`` share where the greedy
    and forced paths differ, ``entropy`` mean frame entropy (nats) of p_ctc(z_t | H) (eq 3)."""

    blank_top: float
    differ: float
    entropy: float


def set_stats(m: LoadedModel, utts: Sequence[Utterance]) -> SetStats:
    """:class:`SetStats` of one model on a set of utterances (frame-weighted)."""
    views = [ctc_view(m, u) for u in utts]
    n = max(sum(v.n_frames for v in views), 1)
    blank = sum(blank_share(v.out.ctc_logp).top * v.n_frames for v in views) / n
    entropy = sum(mean_entropy(v.out.ctc_logp) * v.n_frames for v in views) / n
    return SetStats(blank, disagreement_share(m, utts), entropy)


def compare_line(names: Sequence[str], stats: Sequence[SetStats]) -> str:
    """One printed line per entry and the verdicts: which has more differing frames and sharper posteriors."""
    lines = [f"{name}: blank is the argmax on {s.blank_top:.0%} of frames, greedy ≠ forced on {s.differ:.1%}, "
             f"mean frame entropy {s.entropy:.3f} nats" for name, s in zip(names, stats, strict=True)]
    a, b = stats[0], stats[-1]
    lines.append(f"more frames differ for {names[-1]} than for {names[0]}: {'yes' if b.differ > a.differ else 'no'}")
    lines.append(f"{names[-1]}'s posteriors are sharper (lower entropy) than {names[0]}'s: "
                 f"{'yes' if b.entropy < a.entropy else 'no'}")
    return "\n".join(lines)


def near_miss_report(m: LoadedModel, utts: Sequence[Utterance], floor: float = 0.3) -> list[str]:
    """Frames where blank wins but a token has p > ``floor``, in the first of ``utts`` that has any (with their
    distance to the forced segments and a count of those inside or next to one); a stated line when none has."""
    for u in utts:
        v = ctc_view(m, u)
        misses = blank_near_misses(v.out.ctc_logp, floor)
        if misses:
            near = sum(0 <= distance_to_segments(v.segments, t) <= 1 for t, _, _ in misses)
            return [f"{u.id}:", *near_miss_lines(m, v, floor),
                    f"{near} of these {len(misses)} frame(s) lie inside or next to (≤ 1 frame from) a forced segment"]
    return [f"{NO_CASE}: no frame of the {len(utts)} utterances where blank wins and a token has p > {floor:g}"]
