"""Error rate and real-time factor of Algorithm 1 against the beam size B (the paper's Table 3, measured live).

Every utterance is encoded once; its encoder time counts towards every B. The searches of one utterance run
one after the other for all B (interleaved), so a load change on the machine hits all beam sizes alike.
RTF = (encoder seconds + search seconds) / audio seconds, batch 1, one torch thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    """One beam size over the whole set: error counts (model's unit) and timing."""

    beam: int
    stats: ErrorStats
    encoder_s: float
    search_s: float
    audio_s: float

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
    audio = sum(u.duration for u in utts)
    return [SweepPoint(b, score(m, utts, hyps[b]), encoder_s, search_s[b], audio) for b in beams]


def sweep_table(points: Sequence[SweepPoint], unit: str) -> list[dict[str, float | int]]:
    """Rows for display: beam, error rate, I+D, errors, RTF and seconds (a ``pandas.DataFrame(rows)``)."""
    name = "WER %" if unit == "word" else "CER %"
    return [{"beam B": p.beam, name: round(p.rate, 2), "I+D %": round(p.stats.i_plus_d, 2),
             "errors": p.stats.errors, "ref units": p.stats.n_ref, "RTF": round(p.rtf, 4),
             "encoder s": round(p.encoder_s, 2), "search s": round(p.search_s, 2)} for p in points]
