"""Error rate and real-time factor of Algorithm 1 against the beam size B (the paper's Table 3, measured live).

Every utterance is encoded once; its encoder time counts towards every B. The searches of one utterance run
one after the other for all B (interleaved), so a load change on the machine hits all beam sizes alike.
RTF = (encoder seconds + search seconds) / audio seconds, batch 1, one torch thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from kdlab.evaluate.metrics import ErrorStats, rtf
from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import run_encoder
from kdlab.explore.scoring import score
from kdlab.explore.searches import maskctc_beam_search
from kdlab.explore.utterance import Utterance

T = TypeVar("T")


@dataclass
class SweepPoint:
    """One beam size over the whole set: error counts (model's unit), timing, and per utterance the 1-best
    text, its accumulated eq 5 score and its errors (in the order of the utterances swept)."""

    beam: int
    stats: ErrorStats
    encoder_s: float
    search_s: float
    audio_s: float
    texts: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """CER/WER in percent."""
        return self.stats.rate

    @property
    def rtf(self) -> float:
        """(encoder + search seconds) / audio seconds."""
        return rtf(self.encoder_s + self.search_s, self.audio_s)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one torch thread (as the paper's single-core RTF), then restore the setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``fn(*args, **kwargs)`` and its wall-clock seconds."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - t0


def beam_sweep(m: LoadedModel, utts: Sequence[Utterance], beams: Sequence[int] = (1, 2, 5, 10),
               p_thr: float = 0.99, K: int = 2) -> list[SweepPoint]:
    """Decode ``utts`` with Algorithm 1 at every beam size in ``beams``; one :class:`SweepPoint` per beam."""
    if not utts:
        raise ValueError("beam_sweep needs at least one utterance")
    hyps: dict[int, list[str]] = {b: [] for b in beams}
    scores: dict[int, list[float]] = {b: [] for b in beams}
    search_s = dict.fromkeys(beams, 0.0)
    encoder_s = 0.0
    with one_thread():
        maskctc_beam_search(m, run_encoder(m, utts[0]), beam=max(beams), p_thr=p_thr, K=K)  # warm-up
        for utt in utts:
            out, dt = _timed(run_encoder, m, utt)
            encoder_s += dt
            for b in beams:
                (found, _), dt = _timed(maskctc_beam_search, m, out, beam=b, p_thr=p_thr, K=K)
                search_s[b] += dt
                hyps[b].append(m.text(found[0].tokens))
                scores[b].append(found[0].score)
    audio = sum(u.duration for u in utts)
    return [SweepPoint(b, score(m, utts, hyps[b]), encoder_s, search_s[b], audio, hyps[b], scores[b],
                       [score(m, [u], [h]).errors for u, h in zip(utts, hyps[b], strict=True)]) for b in beams]


def sweep_table(points: Sequence[SweepPoint], unit: str) -> list[dict[str, float | int]]:
    """Rows for display: beam, error rate, I+D, errors, RTF and seconds (a ``pandas.DataFrame(rows)``)."""
    name = "WER %" if unit == "word" else "CER %"
    return [{"beam B": p.beam, name: round(p.rate, 2), "I+D %": round(p.stats.i_plus_d, 2),
             "errors": p.stats.errors, "ref units": p.stats.n_ref, "RTF": round(p.rtf, 4),
             "encoder s": round(p.encoder_s, 2), "search s": round(p.search_s, 2)} for p in points]


# The paper's Table 3: Beam5/Beam10 vs Beam1 of Algorithm 1 give a 5-9 % relative error reduction.
PAPER_GAIN_PERCENT = (5.0, 9.0)


@dataclass
class BeamEffect:
    """What the widest beam of a sweep changed against the narrowest, on the corpus and per utterance."""

    narrow: int
    wide: int
    rate_narrow: float  # error rate in percent
    rate_wide: float
    n_ref: int  # reference units of the set (one error = 100 / n_ref percent)
    utts: int
    changed: int  # utterances whose 1-best text differs
    better: int  # ... of them with fewer errors at the wide beam
    worse: int  # ... with more errors
    higher_score: int  # ... whose wide-beam 1-best has the higher eq 5 score
    worse_higher: int  # ... with more errors although the model scores them higher (model errors)
    rtf_narrow: float = 0.0
    rtf_wide: float = 0.0

    @property
    def relative_gain(self) -> float:
        """Relative error reduction in percent (> 0: the wide beam is better), as the paper reports it."""
        return 100.0 * (self.rate_narrow - self.rate_wide) / self.rate_narrow if self.rate_narrow else 0.0


def beam_effect(points: Sequence[SweepPoint]) -> BeamEffect:
    """Compare the narrowest and the widest beam of a sweep (points as :func:`beam_sweep` returns them)."""
    lo, hi = min(points, key=lambda p: p.beam), max(points, key=lambda p: p.beam)
    changed = [i for i, (a, b) in enumerate(zip(lo.texts, hi.texts, strict=True)) if a != b]
    worse = [i for i in changed if hi.errors[i] > lo.errors[i]]
    higher = [i for i in changed if hi.scores[i] > lo.scores[i]]
    return BeamEffect(lo.beam, hi.beam, lo.rate, hi.rate, lo.stats.n_ref, len(lo.texts), len(changed),
                      sum(hi.errors[i] < lo.errors[i] for i in changed), len(worse), len(higher),
                      len(set(worse) & set(higher)), lo.rtf, hi.rtf)


def _paper_comparison(gain: float) -> str:
    """How a measured relative gain compares with the paper's 5-9 %."""
    lo, hi = PAPER_GAIN_PERCENT
    if gain >= lo:
        return f"as large as the paper's {lo:.0f}–{hi:.0f} % relative gain or larger: it agrees with the paper"
    if gain > 0:
        return f"a gain, but smaller than the paper's {lo:.0f}–{hi:.0f} %"
    return f"no gain: the paper's {lo:.0f}–{hi:.0f} % relative gain is NOT reproduced here"


def beam_verdict(points: Sequence[SweepPoint], unit: str, set_name: str = "check set") -> list[str]:
    """Computed lines: the corpus verdict against the paper's 5-9 % relative gain, what the wider beam did
    utterance by utterance, and (where it made transcripts worse) why that is a model error."""
    e = beam_effect(points)
    name, what = ("WER", "words") if unit == "word" else ("CER", "characters")
    lines = [f"{set_name}: {name} {e.rate_narrow:.2f} % (B = {e.narrow}) → {e.rate_wide:.2f} % (B = {e.wide}), "
             f"{e.relative_gain:+.1f} % relative gain — {_paper_comparison(e.relative_gain)}. One error is "
             f"{100 / max(e.n_ref, 1):.2f} % here ({e.n_ref} reference {what}). RTF × "
             f"{e.rtf_wide / max(e.rtf_narrow, 1e-12):.2f} (paper: about × 1.5).",
             f"{set_name}: the 1-best changes on {e.changed} of {e.utts} utterances; the wider beam's transcript "
             f"scores higher (eq 5) on {e.higher_score} of them and has fewer errors on {e.better}, more on {e.worse}."]
    if e.worse_higher:
        lines.append(f"{set_name}: on {e.worse_higher} utterance(s) the wider beam found a transcript the model "
                     "scores higher and that has more errors: the search did its job, the model's scores are wrong "
                     "(a model error, which no beam can fix).")
    return lines
