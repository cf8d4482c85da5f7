"""The default examples of notebooks 03 and 04, chosen by computation over a whole check set.

- 03: an utterance whose 1-best Algorithm 1 changes when the beam widens (:func:`pick_beam_change`, from the
  per-utterance results of :func:`kdlab.explore.sweep.beam_sweep`), and the end-rule case of the AR joint
  beam search to show (:func:`pick_end_rule_case`, over :func:`kdlab.explore.end_rules.compare_over_beams`);
- 04: a position masked for the student (eq 11) where the teacher's and the students' top-1 tokens differ
  (:func:`pick_disagreement`, from :func:`kdlab.explore.compare.compare_decoders`).

Every picker returns a :class:`Pick` whose ``message`` is one printed line: what was found, or
``"no such case in this set: …"`` and what is shown instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdlab.explore.compare import DecoderComparison, EncodedCache, compare_decoders, mask_positions
from kdlab.explore.end_rules import EndRuleReport, Lesson, find_lesson
from kdlab.explore.model import LoadedModel
from kdlab.explore.sweep import SweepPoint, beam_sweep
from kdlab.explore.utterance import Utterance

NO_CASE = "no such case in this set"


@dataclass
class Pick:
    """A chosen example: utterance ``index`` (None: no such case) and, for 04, a reference ``position``."""

    index: int | None
    message: str
    position: int | None = None

    @property
    def found(self) -> bool:
        return self.index is not None

    @property
    def shown(self) -> int:
        """The utterance to show: the pick, or the first utterance when there is no such case."""
        return self.index if self.index is not None else 0


# ------------------------------------------------------------------ 03: where the beam changes the 1-best


def _beam_change_key(lo: SweepPoint, hi: SweepPoint, i: int) -> tuple[int, int, float]:
    """Sort key (smaller = better example): fewer errors at the wide beam first, then more errors (a model
    error made visible), then a text change alone; within each, the larger error change and score gain."""
    delta = hi.errors[i] - lo.errors[i]
    kind = 0 if delta < 0 else (1 if delta > 0 else 2)
    return kind, -abs(delta), -(hi.scores[i] - lo.scores[i])


def pick_beam_change(points: Sequence[SweepPoint], utts: Sequence[Utterance]) -> Pick:
    """The utterance whose 1-best differs most instructively between the narrowest and the widest beam of a
    sweep over ``utts`` (see :func:`_beam_change_key`)."""
    lo, hi = min(points, key=lambda p: p.beam), max(points, key=lambda p: p.beam)
    changed = [i for i, (a, b) in enumerate(zip(lo.texts, hi.texts, strict=True)) if a != b]
    if not changed:
        return Pick(None, f"{NO_CASE}: B = {hi.beam} gives the same 1-best as B = {lo.beam} on all {len(utts)} "
                          f"utterances; showing {utts[0].id}.")
    i = min(changed, key=lambda j: _beam_change_key(lo, hi, j))
    return Pick(i, f"{utts[i].id}: B = {lo.beam} → B = {hi.beam} changes the 1-best, {lo.errors[i]} → "
                   f"{hi.errors[i]} errors, eq 5 score {lo.scores[i]:.3f} → {hi.scores[i]:.3f} ({len(changed)} of "
                   f"{len(utts)} utterances change).")


def beam_change_pick(m: LoadedModel, utts: Sequence[Utterance], beams: tuple[int, int] = (1, 10),
                     p_thr: float = 0.99, K: int = 2) -> Pick:
    """Decode ``utts`` at the two beam sizes (Algorithm 1) and pick as :func:`pick_beam_change`."""
    return pick_beam_change(beam_sweep(m, utts, beams, p_thr, K), utts)


# ------------------------------------------------------------------ 03: the end-rule case


@dataclass
class EndRulePick:
    """The beam size whose report to show, its lesson (case or None) and one printed line."""

    report: EndRuleReport | None
    lesson: Lesson | None
    message: str


def pick_end_rule_case(reports: Sequence[EndRuleReport]) -> EndRulePick:
    """A beam size where a 1-best depends on the rule: first one where the exact rule's higher-scored hypothesis
    has more errors in the model's unit, then one where it has more character errors (:func:`find_lesson`),
    then any; ties go to the beam sizes in the order given."""
    counts = ", ".join(f"B = {r.beam}: {len(r.differing)} of {len(r.cases)}" for r in reports)
    lessons = [(r, find_lesson(r)) for r in reports if r.differing]
    if not lessons:
        return EndRulePick(None, None, f"{NO_CASE}: the two end rules give the same 1-best everywhere ({counts}).")
    ranked = sorted(lessons, key=lambda rl: (rl[1].case is None, rl[1].by != "unit"))  # stable: keeps B order
    report, lesson = ranked[0]
    return EndRulePick(report, lesson, f"1-bests that depend on the rule: {counts}. Shown: B = {report.beam}. "
                                       f"{lesson.message}")


# ------------------------------------------------------------------ 04: a masked position where they differ


@dataclass
class PositionVote:
    """Top-1 tokens at one masked position: the teacher's and each student's (by name)."""

    utt: int
    position: int
    reference: int
    teacher: int
    students: dict[str, int]
    kl: float  # KL(P ‖ Q) of the shown student there (eq 11's summand)

    def differing(self) -> int:
        """How many students' top-1 differ from the teacher's."""
        return sum(t != self.teacher for t in self.students.values())


def _votes(utt: int, decs: dict[str, DecoderComparison], shown: str) -> list[PositionVote]:
    """One vote per masked position of one utterance, from the students' decoder comparisons."""
    any_dec = decs[shown]
    out = []
    for p, hide in enumerate(any_dec.masked):
        if not hide:
            continue
        teacher_top = any_dec.top_k(p, 1)[0][0][0]
        tops = {name: d.top_k(p, 1)[1][0][0] for name, d in decs.items()}
        out.append(PositionVote(utt, p, any_dec.tokens[p], teacher_top, tops, float(any_dec.kl[p])))
    return out


def position_votes(teacher: LoadedModel, students: Sequence[LoadedModel], utts: Sequence[Utterance],
                   shown: str, fraction: float = 0.5, seed: int = 0) -> list[PositionVote]:
    """Top-1 of teacher and students at every masked position (the fixed masks of
    :func:`~kdlab.explore.compare.mask_positions`) of every utterance; ``shown`` = the student whose KL counts."""
    cache, votes = EncodedCache(), []
    for i, utt in enumerate(utts):
        tokens = teacher.tokenizer.encode(utt.text)
        if not tokens:
            continue
        masked = mask_positions(len(tokens), fraction, seed)
        t_out = cache.get(teacher, utt)
        decs = {s.name: compare_decoders(teacher, t_out, s, cache.get(s, utt), tokens, masked) for s in students}
        votes += _votes(i, decs, shown)
    return votes


def pick_disagreement(votes: Sequence[PositionVote], utts: Sequence[Utterance], shown: str,
                      vocab: Sequence[str]) -> Pick:
    """A masked position where the ``shown`` student's top-1 differs from the teacher's, preferring the teacher
    right (top-1 = reference), then the most students differing, then the largest KL."""
    hits = [v for v in votes if v.students[shown] != v.teacher]
    if not hits:
        return Pick(None, f"{NO_CASE}: at all {len(votes)} masked positions {shown.split('/')[-1]}'s top-1 equals "
                          f"the teacher's; showing the first masked position of {utts[0].id}.")
    v = max(hits, key=lambda h: (h.teacher == h.reference, h.differing(), h.kl))
    tops = ", ".join(f"{n.split('/')[-1]} {vocab[t]!r}" for n, t in v.students.items())
    return Pick(v.utt, f"{utts[v.utt].id}, position {v.position} (reference {vocab[v.reference]!r}, masked): teacher's "
                       f"top-1 {vocab[v.teacher]!r}; students' top-1: {tops}; {v.differing()} of {len(v.students)} "
                       f"students differ from the teacher ({len(hits)} of {len(votes)} masked positions in the set "
                       f"where {shown.split('/')[-1]} does).", v.position)
