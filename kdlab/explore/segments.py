"""CTC frame paths and token segments of one utterance (eq 3), as plain data for the figures.

The many-to-one collapse η (merge repeats, drop blanks) and its inverse η⁻¹ on small examples, the trellis
of the reference tokens with interleaved blanks, the forced-alignment path through it, token and word spans
in encoder frames, the top tokens of a frame and the audio of a span (for playback).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import numpy as np
import torch

from kdlab.explore.model import LoadedModel
from kdlab.explore.outputs import Outputs, run_encoder
from kdlab.explore.searches import forced_alignment, greedy
from kdlab.explore.utterance import Utterance
from kdlab.search.types import CTCGreedyTrace, CTCResult, Segment
from kdlab.tokens import BLANK

BLANK_SYMBOL = "∅"
WORD_START = "▁"
MAX_ENUMERATED_PATHS = 1_000_000

S = TypeVar("S", bound=Hashable)


class TokenSpan(NamedTuple):
    """A labelled span of encoder frames ``[start, end)``; ``score`` = mean frame probability."""

    label: str
    start: int
    end: int
    score: float = 1.0


def collapse(path: Sequence[S], blank: S) -> list[S]:
    """Eq 3's many-to-one map η: merge repeated symbols, then drop blanks (``a a ∅ a b`` → ``a a b``)."""
    out: list[S] = []
    prev: S | None = None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return out


def collapse_rows(paths: Sequence[Sequence[str]], blank: str = BLANK_SYMBOL) -> list[tuple[list[str], list[str]]]:
    """``(frame path, η(path))`` pairs for a table of examples."""
    return [(list(p), collapse(p, blank)) for p in paths]


def alignments(target: Sequence[str], n_frames: int, blank: str = BLANK_SYMBOL) -> list[list[str]]:
    """η⁻¹(y): every ``n_frames``-long path that collapses to ``target`` (the sum of eq 3 runs over these).

    Brute force over the symbols of ``target`` plus blank, so only for tiny examples.
    """
    symbols = sorted(set(target) | {blank})
    if len(symbols) ** n_frames > MAX_ENUMERATED_PATHS:
        raise ValueError(f"{len(symbols)}^{n_frames} paths are too many to enumerate; use fewer frames")
    want = list(target)
    return [list(p) for p in itertools.product(symbols, repeat=n_frames) if collapse(p, blank) == want]


def cut_points(path: Sequence[Hashable], width: int) -> list[int]:
    """Row boundaries of about ``width`` frames, each moved forward to where the symbol changes, so that
    the rows' collapses concatenate to the collapse of the whole path (a run is never split)."""
    cuts, i = [0], width
    while i < len(path):
        while i < len(path) and path[i] == path[i - 1]:
            i += 1
        if i < len(path):
            cuts.append(i)
        i += width
    return cuts + [len(path)]


def greedy_path_rows(m: LoadedModel, trace: CTCGreedyTrace, n_frames: int, start: int = 0,
                     width: int = 12) -> list[list[str]]:
    """The model's own best path (frame argmax) from frame ``start``, in rows of about ``width`` frames."""
    ids = trace.frame_ids[start: start + n_frames]
    cuts = cut_points(ids, width)
    return [m.pieces(ids[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def extended_tokens(tokens: Sequence[int]) -> list[int]:
    """The CTC state sequence ``∅ y1 ∅ y2 … yL ∅`` (2L + 1 states)."""
    ext = [BLANK]
    for t in tokens:
        ext += [int(t), BLANK]
    return ext


def trellis(ctc_logp: torch.Tensor, tokens: Sequence[int]) -> torch.Tensor:
    """log p(state s at frame t) for the states of :func:`extended_tokens`: (T', V) → (2L + 1, T')."""
    return ctc_logp[:, extended_tokens(tokens)].T  # (2L+1, T')


def trellis_labels(m: LoadedModel, tokens: Sequence[int]) -> list[str]:
    """Row labels of :func:`trellis` (``∅``, pieces, ``∅``, …)."""
    return m.pieces(extended_tokens(tokens))


def path_states(segments: Sequence[Segment], n_frames: int) -> list[int]:
    """The trellis row of every frame along a forced alignment: token i is row 2i + 1, blanks are even rows."""
    states = []
    for t in range(n_frames):
        done = sum(1 for s in segments if s.end <= t)  # tokens completed before frame t
        inside = any(s.start <= t < s.end for s in segments)
        states.append(2 * done + 1 if inside else 2 * done)
    return states


def frame_tokens(segments: Sequence[Segment], n_frames: int) -> list[int]:
    """The forced path's symbol per frame (token id inside a segment, blank elsewhere)."""
    ids = [BLANK] * n_frames
    for s in segments:
        ids[s.start: s.end] = [s.token] * (s.end - s.start)
    return ids


def path_differences(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """Frames where two equally long frame paths pick different symbols."""
    if len(a) != len(b):
        raise ValueError(f"paths differ in length: {len(a)} vs {len(b)}")
    return [t for t, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def window_around(frames: Sequence[int], n_frames: int, width: int = 40) -> tuple[int, int]:
    """A ``width``-frame window ``(first, end)`` centred on the first of ``frames`` (the start when there is
    none), kept inside the utterance."""
    centre = frames[0] if frames else 0
    first = min(max(0, centre - width // 2), max(0, n_frames - width))
    return first, min(n_frames, first + width)


def token_spans(m: LoadedModel, segments: Sequence[Segment]) -> list[TokenSpan]:
    """Forced-alignment segments labelled with their pieces."""
    return [TokenSpan(m.piece(s.token), s.start, s.end, s.score) for s in segments]


def greedy_spans(m: LoadedModel, result: CTCResult) -> list[TokenSpan]:
    """Greedy CTC tokens as spans; ``score`` = the token's confidence (max frame probability)."""
    return [TokenSpan(m.piece(t), a, b, c) for t, (a, b), c in zip(result.tokens, result.spans, result.confidences,
                                                                    strict=True)]


def word_spans(m: LoadedModel, spans: Sequence[TokenSpan]) -> list[TokenSpan]:
    """Merge piece spans into words (a BPE piece starting with ``▁`` opens a word; characters are words).

    A word runs from its first piece's start to its last piece's end; ``score`` = frame-weighted mean.
    """
    groups: list[list[TokenSpan]] = []
    for s in spans:
        opens = m.tokenizer.kind != "bpe" or s.label.startswith(WORD_START) or not groups
        if opens:
            groups.append([s])
        else:
            groups[-1].append(s)
    return [_merge(g) for g in groups]


def _merge(group: Sequence[TokenSpan]) -> TokenSpan:
    frames = [max(s.end - s.start, 1) for s in group]
    score = sum(s.score * n for s, n in zip(group, frames, strict=True)) / sum(frames)
    return TokenSpan("".join(s.label for s in group).lstrip(WORD_START), group[0].start, group[-1].end, score)


def span_at(spans: Sequence[TokenSpan], frame: int) -> int | None:
    """Index of the span that holds ``frame`` (None on a blank frame between spans)."""
    return next((i for i, s in enumerate(spans) if s.start <= frame < s.end), None)


def top_tokens(ctc_logp: torch.Tensor, frame: int, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` most probable symbols of one frame as ``(token id, probability)``, best first."""
    probs, ids = ctc_logp[frame].exp().topk(min(k, ctc_logp.size(1)))  # (k,)
    return list(zip(ids.tolist(), probs.tolist(), strict=True))


def emission_rows(ctc_logp: torch.Tensor, max_rows: int = 80) -> list[int]:
    """Vocabulary rows worth showing: all of them for a small vocabulary, else blank plus the tokens that
    reach the highest probability in some frame (in id order)."""
    V = ctc_logp.size(1)
    if V <= max_rows:
        return list(range(V))
    peak = ctc_logp.max(dim=0).values  # (V,)
    peak[BLANK] = float("inf")
    return sorted(peak.topk(max_rows).indices.tolist())


def span_audio(utt: Utterance, span: TokenSpan, frame_s: float, pad_s: float = 0.0) -> np.ndarray:
    """The audio samples under a span (encoder frames × ``frame_s`` seconds), optionally padded: (n,)."""
    sr = utt.sample_rate
    a = max(0, int((span.start * frame_s - pad_s) * sr))
    b = min(utt.audio.numel(), int((span.end * frame_s + pad_s) * sr))
    return utt.audio[a:b].numpy()


def span_clips(utt: Utterance, spans: Sequence[TokenSpan], frame_s: float,
               pad_s: float = 0.0) -> list[tuple[str, np.ndarray]]:
    """``(label, audio)`` of every span (see :func:`span_audio`)."""
    return [(s.label, span_audio(utt, s, frame_s, pad_s)) for s in spans]


@dataclass
class CTCView:
    """Everything the CTC figures of one utterance need, computed once: encoder outputs, greedy decoding
    (tokens, confidences, per-frame path) and the forced alignment of the reference."""

    utt: Utterance
    out: Outputs
    greedy: CTCResult
    path: CTCGreedyTrace
    ref_tokens: list[int]
    segments: list[Segment]

    @property
    def n_frames(self) -> int:
        return self.out.ctc_logp.size(0)


def ctc_view(m: LoadedModel, utt: Utterance) -> CTCView:
    """Encode one utterance and run greedy CTC and the forced alignment of its reference (eq 3)."""
    out = run_encoder(m, utt)
    result, path = greedy(out)
    ref = m.tokenizer.encode(utt.text)
    try:
        segments = forced_alignment(m, out, utt.text)
    except ValueError:  # a reference longer than the frames allow has no alignment
        segments = []
    return CTCView(utt, out, result, path, ref, segments)


# ---------------------------------------------------------------- computed statements about one utterance
class BlankShare(NamedTuple):
    """How much of an utterance CTC spends in blank: ``top`` = share of frames whose most probable symbol is
    blank, ``sure`` = share with p(blank) > ``threshold``, ``token_run`` = mean length (frames) of a run of one
    token on the greedy path (eq 3's repeats that η merges)."""

    n_frames: int
    top: float
    sure: float
    threshold: float
    token_run: float


def token_runs(frame_ids: Sequence[int]) -> list[int]:
    """Lengths of the runs of one non-blank symbol along a frame path (``a a ∅ b`` → ``[2, 1]``)."""
    runs: list[int] = []
    prev: int | None = None
    for s in frame_ids:
        if s != BLANK and s == prev:
            runs[-1] += 1
        elif s != BLANK:
            runs.append(1)
        prev = s
    return runs


def blank_share(ctc_logp: torch.Tensor, threshold: float = 0.9) -> BlankShare:
    """:class:`BlankShare` of CTC log-posteriors (T', V)."""
    probs = ctc_logp.exp()  # (T', V)
    best = probs.argmax(dim=1)  # (T',)
    runs = token_runs(best.tolist())
    n = max(probs.size(0), 1)
    return BlankShare(probs.size(0), float((best == BLANK).sum()) / n, float((probs[:, BLANK] > threshold).sum()) / n,
                      threshold, sum(runs) / len(runs) if runs else 0.0)


def blank_line(s: BlankShare) -> str:
    """One printed line on where the frames' probability mass goes, with its verdict."""
    most = "yes" if s.top > 0.5 else "no"
    return (f"blank is the most probable symbol on {s.top:.0%} of the {s.n_frames} frames (p(blank) > "
            f"{s.threshold:g} on {s.sure:.0%}); a token holds the argmax for {s.token_run:.1f} frames in a row on "
            f"average. Blank wins on most frames: {most}")


def mean_entropy(ctc_logp: torch.Tensor) -> float:
    """Mean entropy (nats) of the per-frame distributions p_ctc(z_t | H) of eq 3: lower = sharper spikes."""
    return float(-(ctc_logp.exp() * ctc_logp).sum(dim=1).mean())


def difference_line(differ: Sequence[int], n_frames: int, word_errors: int) -> str:
    """One printed line comparing the greedy path with the forced path (eq 3), with the greedy words' verdict."""
    words = "yes" if word_errors == 0 else f"no ({word_errors} word errors)"
    return f"{len(differ)} of {n_frames} frames differ: {list(differ)}; greedy CTC's words match the reference: {words}"


def window_line(differ: Sequence[int], window: tuple[int, int]) -> str:
    """What :func:`window_around` chose: the window around the first difference, or the start when none."""
    a, b = window
    if differ:
        return f"frames {a}–{b - 1}, around the first disagreement (frame {differ[0]})"
    return f"no frame differs: frames {a}–{b - 1}, the start of the utterance"


def blank_near_misses(ctc_logp: torch.Tensor, floor: float = 0.3) -> list[tuple[int, int, float]]:
    """Frames where blank is the most probable symbol but a token still has p > ``floor``:
    ``(frame, token id, p)`` with the most probable such token."""
    probs = ctc_logp.exp().clone()  # (T', V)
    blank_wins = probs.argmax(dim=1) == BLANK  # (T',)
    probs[:, BLANK] = 0
    p, tok = probs.max(dim=1)  # (T',)
    return [(t, int(tok[t]), float(p[t])) for t in range(probs.size(0)) if blank_wins[t] and p[t] > floor]


def distance_to_segments(segments: Sequence[Segment], frame: int) -> int:
    """Frames from ``frame`` to the nearest forced-alignment segment (0 inside one; -1 when there is none)."""
    if not segments:
        return -1
    return min(0 if s.start <= frame < s.end else (s.start - frame if frame < s.start else frame - s.end + 1)
               for s in segments)


def near_miss_lines(m: LoadedModel, v: CTCView, floor: float = 0.3) -> list[str]:
    """One line per :func:`blank_near_misses` frame: the token, its probability and how far the frame lies
    from the nearest forced-alignment segment; a stated line when there is no such frame."""
    misses = blank_near_misses(v.out.ctc_logp, floor)
    if not misses:
        return [f"no frame of {v.utt.id} where blank wins and a token has p > {floor:g}"]
    return [f"frame {t}: blank wins, {m.piece(tok)!r} has p = {p:.2f}; "
            f"{distance_to_segments(v.segments, t)} frame(s) from the nearest forced segment" for t, tok, p in misses]
