"""CTC figures (eq 3): waveform, fbank, emission heatmap, collapse table, trellis with the forced path,
token segments over the waveform and spectrogram, greedy vs forced frame paths, a frame's top tokens.

Spans are tuples ``(label, start, end, …)`` in encoder frames (e.g. :class:`kdlab.explore.segments.TokenSpan`);
``frame_s`` converts frames to seconds.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

BLANK_COLOUR = "#d62728"
SPAN_COLOURS = ("#1f77b4", "#ff7f0e")
TRELLIS_FLOOR = -12.0  # log p shown in the trellis is clipped here
Span = tuple  # (label, start frame, end frame, ...)


def _np(x: torch.Tensor | np.ndarray | Sequence[float]) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _plot_wave(ax: Axes, audio: np.ndarray, sample_rate: int) -> None:
    t = np.arange(len(audio)) / sample_rate
    ax.plot(t, audio, lw=0.5, color="#333333")
    ax.set_xlim(0, len(audio) / sample_rate)
    ax.set_ylabel("amplitude")


def _plot_fbank(ax: Axes, fbank: np.ndarray, frame_shift_s: float) -> None:
    ax.imshow(fbank.T, origin="lower", aspect="auto", cmap="magma",
              extent=(0, fbank.shape[0] * frame_shift_s, 0, fbank.shape[1]))
    ax.set_ylabel("mel bin")


def waveform_figure(audio: torch.Tensor | np.ndarray, sample_rate: int, title: str = "") -> Figure:
    """The raw waveform (N,) over seconds."""
    fig = Figure(figsize=(12, 2.2), layout="constrained")
    ax = fig.add_subplot()
    _plot_wave(ax, _np(audio), sample_rate)
    ax.set_xlabel("time (s)")
    ax.set_title(title, fontsize=10)
    return fig


def fbank_figure(fbank: torch.Tensor | np.ndarray, frame_shift_s: float = 0.01, title: str = "") -> Figure:
    """The log-mel filterbank features (T, 80) the encoder reads (before CMVN)."""
    fig = Figure(figsize=(12, 2.6), layout="constrained")
    ax = fig.add_subplot()
    _plot_fbank(ax, _np(fbank), frame_shift_s)
    ax.set_xlabel("time (s)")
    ax.set_title(title or f"log-mel fbank: {fbank.shape[0]} frames × {fbank.shape[1]} bins", fontsize=10)
    return fig


def _draw_emission(ax: Axes, probs: np.ndarray, labels: Sequence[str], rows: Sequence[int], log: bool,
                   blank: int) -> AxesImage:
    """The heatmap of ``probs`` (T', V) on ``ax`` (rows ``rows``, blank's label red); returns the image for a
    colour bar."""
    img = np.log(np.clip(probs[:, rows], 1e-8, 1)) if log else probs[:, rows]  # (T', R)
    im = ax.imshow(img.T, aspect="auto", origin="upper", cmap="viridis", interpolation="nearest",
                   vmin=-8 if log else 0, vmax=0 if log else 1)
    ax.set_yticks(range(len(rows)), [labels[r] for r in rows], fontsize=max(4, min(9, 400 // max(len(rows), 1))))
    for tick, r in zip(ax.get_yticklabels(), rows, strict=True):
        if r == blank:
            tick.set_color(BLANK_COLOUR)
            tick.set_fontweight("bold")
    if blank in rows:
        i = list(rows).index(blank)
        ax.axhline(i - 0.5, color=BLANK_COLOUR, lw=0.8)
        ax.axhline(i + 0.5, color=BLANK_COLOUR, lw=0.8)
    ax.set_ylabel("token")
    return im


def _colour_bar(fig: Figure, im: AxesImage, ax: Axes, log: bool) -> None:
    fig.colorbar(im, ax=ax, label="log p(token | frame)" if log else "p(token | frame)", pad=0.01, fraction=0.03)


def emission_figure(ctc_logp: torch.Tensor | np.ndarray, labels: Sequence[str], rows: Sequence[int] | None = None,
                    marker: int | None = None, log: bool = False, blank: int = 0, title: str = "") -> Figure:
    """CTC posteriors p(token | frame) as a tokens × frames heatmap (eq 3's per-frame distributions).

    ``ctc_logp`` (T', V) log-probabilities; ``labels`` one string per vocabulary id; ``rows`` the ids to
    show (all by default); the blank row is outlined in red; ``marker`` draws a frame line.
    """
    logp = _np(ctc_logp)
    rows = list(range(logp.shape[1])) if rows is None else list(rows)
    fig = Figure(figsize=(12, max(3.0, 0.11 * len(rows) + 1.0)), layout="constrained")
    ax = fig.add_subplot()
    _colour_bar(fig, _draw_emission(ax, np.exp(logp), labels, rows, log, blank), ax, log)
    if marker is not None:
        ax.axvline(marker, color="white", lw=1.2, ls="--")
    ax.set_xlabel("encoder frame")
    ax.set_title(title or ("log " if log else "") + f"CTC posteriors: {logp.shape[0]} frames × {len(rows)} tokens "
                 "(blank row in red)", fontsize=10)
    return fig


def collapse_table_html(rows: Sequence[tuple[Sequence[str], Sequence[str]]], blank: str = "∅") -> str:
    """A table of frame paths and their collapse η(Z) (eq 3); blank frames grey, a new run outlined."""
    cell = "display:inline-block;min-width:1.6em;padding:1px 3px;margin:0 1px;text-align:center;font-family:monospace;"
    out = ['<table style="border-collapse:collapse"><tr><th style="text-align:left">frame path Z</th>'
           '<th></th><th style="text-align:left">η(Z)</th></tr>']
    for path, collapsed in rows:
        cells, prev = [], None
        for s in path:
            bg = "#e0e0e0" if s == blank else ("#bbdefb" if s != prev else "#e3f2fd")
            border = "border-left:2px solid #1565c0;" if s != blank and s != prev else ""
            cells.append(f'<span style="{cell}background:{bg};{border}">{html.escape(s)}</span>')
            prev = s
        result = " ".join(html.escape(c) for c in collapsed) or "(empty)"
        out.append(f'<tr><td style="text-align:left">{"".join(cells)}</td><td>→</td>'
                   f'<td style="text-align:left;font-family:monospace"><b>{result}</b></td></tr>')
    out.append("</table>")
    return "".join(out)


def _window(n: int, frames: tuple[int, int] | None) -> tuple[int, int]:
    a, b = frames if frames is not None else (0, n)
    return max(0, a), min(n, b)


def trellis_figure(trellis: torch.Tensor | np.ndarray, labels: Sequence[str], states: Sequence[int] | None = None,
                   frames: tuple[int, int] | None = None, title: str = "") -> Figure:
    """The trellis log p(state | frame) of ``∅ y1 ∅ y2 … ∅`` (rows) × frames, with the alignment path.

    ``states`` the path's row per frame (e.g. the forced alignment); ``frames`` an optional window
    ``(first, end)`` that also crops the rows to those the path visits there.
    """
    tr = _np(trellis)  # (S, T')
    a, b = _window(tr.shape[1], frames)
    r0, r1 = 0, tr.shape[0]
    if states is not None and len(states[a:b]):
        r0, r1 = max(0, min(states[a:b]) - 2), min(tr.shape[0], max(states[a:b]) + 3)
    fig = Figure(figsize=(12, max(3.0, min(10.0, 0.12 * (r1 - r0) + 1.2))), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(np.clip(tr[r0:r1, a:b], TRELLIS_FLOOR, 0), aspect="auto", origin="upper", cmap="viridis",
                   interpolation="nearest", extent=(a - 0.5, b - 0.5, r1 - 0.5, r0 - 0.5))
    fig.colorbar(im, ax=ax, label="log p", pad=0.01)
    if states is not None:
        ax.plot(range(a, b), states[a:b], color="#ff5252", lw=1.5, marker=".", ms=3, label="forced path")
        ax.legend(loc="upper right", fontsize=8)
    ticks = [r for r in range(r0, r1) if r % 2 == 1] if r1 - r0 > 40 else list(range(r0, r1))
    ax.set_yticks(ticks, [labels[r] for r in ticks], fontsize=max(4, min(8, 500 // max(len(ticks), 1))))
    ax.set_xlabel("encoder frame")
    ax.set_ylabel("state (∅ between tokens)")
    ax.set_title(title or "trellis: reference tokens with interleaved blanks × frames", fontsize=10)
    return fig


def _shade_spans(ax: Axes, spans: Sequence[Span], frame_s: float, highlight: int | None, text_y: float | None,
                 fontsize: float) -> None:
    for i, s in enumerate(spans):
        label, start, end = s[0], s[1], s[2]
        hot = i == highlight
        ax.axvspan(start * frame_s, end * frame_s, color="#e53935" if hot else SPAN_COLOURS[i % 2],
                   alpha=0.45 if hot else 0.18, lw=0)
        if text_y is not None:
            ax.text((start + end) / 2 * frame_s, text_y, label, ha="center", va="bottom", rotation=90,
                    fontsize=fontsize, fontweight="bold" if hot else "normal", clip_on=True)


def segments_figure(audio: torch.Tensor | np.ndarray, sample_rate: int, fbank: torch.Tensor | np.ndarray,
                    spans: Sequence[Span], frame_s: float, frame_shift_s: float = 0.01,
                    highlight: int | None = None, window: tuple[float, float] | None = None,
                    title: str = "") -> Figure:
    """Token (or word) spans shaded over the waveform and the spectrogram, labelled above the waveform;
    ``window`` = ``(start, end)`` in seconds zooms in (labels of spans outside it are left out)."""
    wave, fb = _np(audio), _np(fbank)
    a, b = window if window is not None else (0.0, len(wave) / sample_rate)
    shown = [s for s in spans if s[2] * frame_s > a and s[1] * frame_s < b]
    hot = spans[highlight] if highlight is not None and 0 <= highlight < len(spans) else None
    fig = Figure(figsize=(12, 4.6))  # fixed margins: the picker widget redraws it
    ax_w, ax_f = fig.subplots(2, 1, sharex=True, height_ratios=(1, 1.1))
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.1, top=0.93, hspace=0.06)
    _plot_wave(ax_w, wave, sample_rate)
    top = float(np.abs(wave).max() or 1.0)
    ax_w.set_ylim(-top * 1.05, top * 1.9)
    size = max(6.0, min(10.0, 160 / max(len(shown), 1)))
    _shade_spans(ax_w, shown, frame_s, shown.index(hot) if hot in shown else None, top * 1.08, size)
    _plot_fbank(ax_f, fb, frame_shift_s)
    for s in shown:
        ax_f.axvline(s[1] * frame_s, color="white", lw=0.5, alpha=0.7)
        ax_f.axvline(s[2] * frame_s, color="white", lw=0.5, alpha=0.7, ls=":")
    if hot is not None:
        ax_f.axvspan(hot[1] * frame_s, hot[2] * frame_s, color="#e53935", alpha=0.3)
    ax_f.set_xlim(a, b)
    ax_f.set_xlabel("time (s)")
    ax_w.set_title(title or f"{len(shown)} aligned segments", fontsize=10)
    return fig


def _runs(labels: Sequence[str]) -> list[tuple[int, int, str]]:
    runs: list[tuple[int, int, str]] = []
    for t, s in enumerate(labels):
        if runs and runs[-1][2] == s:
            runs[-1] = (runs[-1][0], t + 1, s)
        else:
            runs.append((t, t + 1, s))
    return runs


def _draw_path_row(ax: Axes, y: float, labels: Sequence[str], blank: str, first: int, end: int) -> None:
    wide = end - first > 60
    for a, b, s in _runs(labels):
        if b <= first or a >= end:
            continue
        ax.add_patch(_rect(a, y, b - a, "#eeeeee" if s == blank else "#90caf9"))
        if s != blank:
            ax.text((max(a, first) + min(b, end)) / 2, y + 0.5, s, ha="center", va="center",
                    rotation=90 if wide else 0, fontsize=6 if wide else 9, clip_on=True)


def _rect(x: float, y: float, w: float, colour: str) -> Rectangle:
    return Rectangle((x, y), w, 1, facecolor=colour, edgecolor="white", lw=0.5)


def path_comparison_figure(rows: Sequence[tuple[str, Sequence[str]]], differ: Sequence[int] = (),
                           blank: str = "∅", frames: tuple[int, int] | None = None, title: str = "") -> Figure:
    """Frame paths one above the other (e.g. greedy best path vs forced alignment): token runs blue, blank
    frames grey; frames in ``differ`` are marked red below."""
    n = max(len(r[1]) for r in rows)
    a, b = _window(n, frames)
    fig = Figure(figsize=(12, 0.9 * len(rows) + 1.0), layout="constrained")
    ax = fig.add_subplot()
    for i, (_, labels) in enumerate(rows):
        _draw_path_row(ax, len(rows) - 1 - i, labels, blank, a, b)
    marks = [t for t in differ if a <= t < b]
    ax.scatter([t + 0.5 for t in marks], [-0.25] * len(marks), marker="^", color="#d62728", s=14,
               label=f"{len(differ)} frames differ")
    ax.set_xlim(a, b)
    ax.set_ylim(-0.5, len(rows))
    ax.set_yticks([len(rows) - 0.5 - i for i in range(len(rows))], [r[0] for r in rows])
    ax.set_xlabel("encoder frame")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "frame paths (grey = blank)", fontsize=10)
    return fig


def topk_figure(labels: Sequence[str], probs: Sequence[float], title: str = "") -> Figure:
    """A frame's most probable symbols as horizontal bars, best on top."""
    fig = Figure(figsize=(4, 0.35 * len(labels) + 0.9), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    ax.barh(y, probs, color=[BLANK_COLOUR if s == "∅" else "#1f77b4" for s in labels])
    ax.set_yticks(y, [f"{s}" for s in labels])
    for yi, p in zip(y, probs, strict=True):
        ax.text(min(p + 0.02, 0.85), yi, f"{p:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("p(token | frame)")
    ax.set_title(title, fontsize=10)
    return fig


def clips_html(clips: Sequence[tuple[str, np.ndarray]], sample_rate: int, per_row: int = 4) -> str:
    """A table of audio players, one per ``(label, samples)`` clip (e.g. the audio under each aligned word)."""
    from IPython.display import Audio

    cells = [f'<td style="text-align:center"><b>{html.escape(s)}</b>'
             f"{Audio(c, rate=sample_rate)._repr_html_() if np.abs(c).max(initial=0) > 0 else '(silence)'}</td>"
             for s, c in clips]
    rows = ["<tr>" + "".join(cells[i: i + per_row]) + "</tr>" for i in range(0, len(cells), per_row)]
    return "<table>" + "".join(rows) + "</table>"


def frame_inspector_figure(ctc_logp: torch.Tensor | np.ndarray, labels: Sequence[str], rows: Sequence[int],
                           frame: int, top: Sequence[tuple[str, float]], blank: int = 0, title: str = "") -> Figure:
    """The emission heatmap (``rows`` only) with a marker at ``frame``, beside that frame's top tokens.

    A fixed layout (no constrained layout) keeps a redraw cheap for a slider."""
    logp = _np(ctc_logp)
    fig = Figure(figsize=(12, max(3.0, 0.13 * len(rows) + 0.9)))
    ax_e, ax_k = fig.subplots(1, 2, width_ratios=(4.2, 1))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.14, top=0.9, wspace=0.18)
    _colour_bar(fig, _draw_emission(ax_e, np.exp(logp), labels, rows, False, blank), ax_e, False)
    ax_e.axvline(frame, color="white", lw=1.2, ls="--")
    ax_e.set_xlabel("encoder frame")
    ax_e.set_title(title or f"frame {frame}", fontsize=10)
    names, probs = [s for s, _ in top], [p for _, p in top]
    y = np.arange(len(top))[::-1]
    ax_k.barh(y, probs, color=[BLANK_COLOUR if s == labels[blank] else "#1f77b4" for s in names])
    ax_k.set_yticks(y, names)
    ax_k.set_xlim(0, 1)
    ax_k.set_xlabel("p(token | frame)")
    ax_k.set_title(f"top {len(top)}", fontsize=10)
    return fig
