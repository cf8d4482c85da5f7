"""The joint beam search under its two end rules, side by side on a set: search error vs model error.

Rule ``"beam"`` (ESPnet's, the default): ``<eos>`` competes for the B beam slots. Rule ``"exact"``: every
``<eos>`` candidate of the pre-beam ends at once, so its 1-best never scores lower (see
:mod:`kdlab.search.joint_beam`). Where the two 1-best differ, the exact rule found a hypothesis the model
prefers. If that hypothesis is also the worse transcript, the beam rule's output was right for a wrong
reason: a search error hid a model error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdlab.evaluate.metrics import CORRECT, INS, SUB, ErrorStats, align, error_rate, tokens_for_unit
from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import run_encoder
from kdlab.explore.scoring import reference_text
from kdlab.explore.searches import ar_beam_search
from kdlab.explore.utterance import Utterance
from kdlab.search.types import Hyp

RULES = ("beam", "exact")


@dataclass
class RuleResult:
    """One rule's 1-best on one utterance: text, joint score (and its parts), errors vs the reference."""

    text: str
    tokens: list[int]
    score: float  # (1 − λ)·att_score + λ·ctc_score, what the search ranks by
    att_score: float
    ctc_score: float
    errors: int  # in the model's unit (words for WER, characters for CER)
    char_errors: int  # always in characters: a finer look when the word counts tie


@dataclass
class EndRuleCase:
    """An utterance decoded under both rules."""

    utt_id: str
    reference: str  # normalised as the tokenizer sees it
    ref_units: int
    beam: RuleResult
    exact: RuleResult

    @property
    def differs(self) -> bool:
        return self.beam.tokens != self.exact.tokens

    @property
    def score_gain(self) -> float:
        """exact − beam joint score (≥ 0 up to rounding: the exact rule never scores lower)."""
        return self.exact.score - self.beam.score

    @property
    def error_change(self) -> int:
        """exact − beam errors in the model's unit (> 0: the better-scored hypothesis is the worse transcript)."""
        return self.exact.errors - self.beam.errors

    @property
    def char_error_change(self) -> int:
        return self.exact.char_errors - self.beam.char_errors


@dataclass
class EndRuleReport:
    """Both rules over a set: every utterance's case plus corpus error counts per rule."""

    cases: list[EndRuleCase]
    totals: dict[str, ErrorStats]  # rule -> corpus counts in the model's unit
    unit: str
    beam: int = 0  # the beam size B both rules searched with (0: not recorded)

    @property
    def differing(self) -> list[EndRuleCase]:
        """Utterances whose 1-best depends on the rule."""
        return [c for c in self.cases if c.differs]

    def model_errors(self, by: str = "unit") -> list[EndRuleCase]:
        """Utterances where the exact rule scores higher but transcribes worse, largest error change first.

        ``by="unit"`` counts errors in the model's unit (WER/CER), ``by="char"`` in characters.
        """
        change = (lambda c: c.error_change) if by == "unit" else (lambda c: c.char_error_change)
        hits = [c for c in self.differing if c.score_gain > 0 and change(c) > 0]
        return sorted(hits, key=lambda c: (change(c), c.score_gain), reverse=True)


def _result(m: LoadedModel, hyp: Hyp, reference: str) -> RuleResult:
    text = m.text(hyp.tokens)
    return RuleResult(text, list(hyp.tokens), hyp.score, hyp.att_score, hyp.ctc_score,
                      error_rate([reference], [text], m.unit).errors, error_rate([reference], [text], "char").errors)


def decode_both_rules(m: LoadedModel, utt: Utterance, beam: int = 10, ctc_weight: float = 0.3) -> EndRuleCase:
    """One utterance through the teacher's joint beam search under each end rule (one encoder pass)."""
    out = run_encoder(m, utt)
    ref = reference_text(m, utt)
    res = {rule: _result(m, ar_beam_search(m, out, beam, ctc_weight, end_rule=rule)[0][0], ref) for rule in RULES}
    n_ref = error_rate([ref], [ref], m.unit).n_ref
    return EndRuleCase(utt.id, ref, n_ref, res["beam"], res["exact"])


def compare_end_rules(m: LoadedModel, utts: Sequence[Utterance], beam: int = 10,
                      ctc_weight: float = 0.3) -> EndRuleReport:
    """Decode ``utts`` under both end rules; the report lists the cases and corpus error counts per rule."""
    cases = [decode_both_rules(m, u, beam, ctc_weight) for u in utts]
    refs = [c.reference for c in cases]
    totals = {rule: error_rate(refs, [getattr(c, rule).text for c in cases], m.unit) for rule in RULES}
    return EndRuleReport(cases, totals, m.unit, beam)


def compare_over_beams(m: LoadedModel, utts: Sequence[Utterance], beams: Sequence[int] = (10, 5, 3),
                       ctc_weight: float = 0.3) -> list[EndRuleReport]:
    """:func:`compare_end_rules` at each beam size: a narrower beam has fewer slots for ``<eos>`` candidates,
    so the rules may disagree at one B and not at another."""
    return [compare_end_rules(m, utts, b, ctc_weight) for b in beams]


def beam_rows(reports: Sequence[EndRuleReport]) -> list[dict[str, object]]:
    """One row per beam size: utterances, how many 1-bests depend on the rule, how many of those the exact
    rule scores higher with more errors (model errors), and both rules' error rates."""
    return [{"beam B": r.beam, "utterances": len(r.cases), "1-best differs": len(r.differing),
             "exact: higher score, more errors": len(r.model_errors("unit")),
             "beam rule error %": round(r.totals["beam"].rate, 2),
             "exact rule error %": round(r.totals["exact"].rate, 2)} for r in reports]


def totals_rows(report: EndRuleReport) -> list[dict[str, object]]:
    """Corpus error counts per rule as table rows."""
    return [{"rule": rule, "utterances": s.n_utts, f"{report.unit} errors": s.errors, "sub": s.sub, "ins": s.ins,
             "del": s.dele, "error rate %": round(s.rate, 2)} for rule, s in report.totals.items()]


def case_rows(cases: Sequence[EndRuleCase]) -> list[dict[str, object]]:
    """One row per (utterance, rule) for a table: hypothesis, joint score and errors vs the reference."""
    rows: list[dict[str, object]] = []
    for c in cases:
        for rule in RULES:
            r: RuleResult = getattr(c, rule)
            rows.append({"utterance": c.utt_id, "rule": rule, "hypothesis": r.text, "joint score": round(r.score, 3),
                         "att score": round(r.att_score, 3), "ctc score": round(r.ctc_score, 3),
                         "errors": r.errors, "char errors": r.char_errors, "reference": c.reference})
    return rows


def alignment_text(reference: str, hypothesis: str, unit: str) -> str:
    """The hypothesis aligned to the reference: correct units as they are, ``[ref→hyp]`` for a substitution,
    ``[+hyp]`` an insertion, ``[-ref]`` a deletion."""
    sep = " " if unit == "word" else ""
    out = []
    for op, r, h in align(tokens_for_unit(reference, unit), tokens_for_unit(hypothesis, unit)):
        out.append(r if op == CORRECT else f"[{r}→{h}]" if op == SUB else f"[+{h}]" if op == INS else f"[-{r}]")
    return sep.join(out)


@dataclass
class Lesson:
    """The utterance that shows search error vs model error best (or None) and a sentence saying what the
    decoded set showed."""

    case: EndRuleCase | None
    by: str  # "unit" or "char": the error count that showed it
    message: str

    def rows(self, unit: str) -> list[dict[str, object]]:
        """Both rules' rows of the case with an alignment against the reference; [] without a case."""
        if self.case is None:
            return []
        rows = case_rows([self.case])
        for row in rows:
            row["alignment"] = alignment_text(self.case.reference, str(row["hypothesis"]), unit)
        return rows


def find_lesson(report: EndRuleReport) -> Lesson:
    """Look for "higher model score, worse transcript" first in the model's unit, then in characters."""
    n, diff = len(report.cases), len(report.differing)
    head = f"{n} utterances decoded under both rules; the 1-best differs on {diff}."
    what = "words" if report.unit == "word" else "characters"
    for by, name in (("unit", what), ("char", "characters")):
        hits = report.model_errors(by)
        if hits:
            c = hits[0]
            change = c.error_change if by == "unit" else c.char_error_change
            note = "" if by == "unit" else f" (counted in {what} they tie or the exact rule is better)"
            return Lesson(c, by, f"{head} On {len(hits)} of them the exact rule finds a higher joint score but a "
                                 f"worse transcript in {name}{note}. Shown: {c.utt_id}, score +{c.score_gain:.3f}, "
                                 f"{change:+d} {name[:-1]} errors.")
    return Lesson(None, "", f"{head} None of them has a higher joint score with more errors (neither in {what} "
                            "nor in characters): on this set the better search never exposed a model error.")


def scatter_data(report: EndRuleReport, by: str = "unit") -> dict[str, object]:
    """The differing utterances as the arguments of :func:`kdlab.viz.beams.end_rule_plot`: score gains, error
    changes (``by="unit"``: the model's unit, ``"char"``: characters), labels and unit."""
    diff = report.differing
    changes = [c.error_change if by == "unit" else c.char_error_change for c in diff]
    return {"score_gains": [c.score_gain for c in diff], "error_changes": changes,
            "labels": [c.utt_id for c in diff], "unit": report.unit if by == "unit" else "char"}


def scatter_over_beams(reports: Sequence[EndRuleReport], by: str = "unit") -> dict[str, object]:
    """:func:`scatter_data` of several reports in one, each label with its beam size."""
    parts = [(r.beam, scatter_data(r, by)) for r in reports]
    unit = reports[0].unit if by == "unit" and reports else "char"
    return {"score_gains": [g for _, d in parts for g in d["score_gains"]],  # type: ignore[attr-defined]
            "error_changes": [e for _, d in parts for e in d["error_changes"]],  # type: ignore[attr-defined]
            "labels": [f"{name} (B={b})" for b, d in parts for name in d["labels"]],  # type: ignore[attr-defined]
            "unit": unit}
