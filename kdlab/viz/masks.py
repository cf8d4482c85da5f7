"""Mask-CTC figures (eq 4-5): greedy-CTC confidences against p_thr, the share of masked tokens per
threshold, the CMLM input with its masks, each easy-first iteration's candidates and fills.

Fills are tuples ``(position, token, piece, prob)`` and candidates ``(position, token, piece, prob, chosen)``
(e.g. :class:`kdlab.explore.masking.Fill` / ``Candidate``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

MASKED_COLOUR = "#d62728"
KEPT_COLOUR = "#1f77b4"
MASK_CELL = "#616161"
KEPT_CELL = "#e0e0e0"
LATER_KEPT_CELL = "#f5f5f5"
PROB_CMAP = "YlGn"
LOGIT_LIMITS = (1e-3, 1 - 1e-5)


def mask_summary(masked: Sequence[bool], p_thr: float) -> str:
    """``"p_thr 0.990: 14 of 22 tokens masked (63.6 %)"``."""
    n, k = len(masked), sum(masked)
    return f"p_thr {p_thr:.3f}: {k} of {n} tokens masked ({100 * k / max(n, 1):.1f} %)"


def _rotation(n: int) -> int:
    return 90 if n > 30 else 0


def _piece_labels(ax: Axes, pieces: Sequence[str], size: float) -> None:
    """Pieces under the x axis as plain texts (much cheaper to draw than tick labels)."""
    ax.set_xticks([])
    for i, p in enumerate(pieces):
        ax.text(i, -0.03, p, rotation=_rotation(len(pieces)), ha="center", va="top", fontsize=size,
                transform=ax.get_xaxis_transform())


LOGIT_TICKS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)
MAX_WIDTH = 10.5  # inches: at the widgets' 100 dpi the figure fits JupyterLab's output area unscaled


def _label_size(n: int, axis_inches: float, most: float = 9) -> float:
    """Font size (pt) that gives each of ``n`` labels its slot of the axis (a rotated label's width is its height)."""
    return max(5.5, min(most, 0.9 * 72 * axis_inches / max(n, 1)))


def confidence_figure(pieces: Sequence[str], confidences: Sequence[float], p_thr: float,
                      masked: Sequence[bool] | None = None, scale: str = "logit", title: str = "") -> Figure:
    """Greedy-CTC token confidences (max frame probability of each token) as bars, masked ones red, with
    the threshold line; ``scale="logit"`` spreads the values near 1 where p_thr lives.

    A fixed layout keeps a redraw cheap (a p_thr slider redraws it)."""
    conf = np.clip(np.asarray(confidences, dtype=float), *LOGIT_LIMITS)
    masked = [c < p_thr for c in confidences] if masked is None else list(masked)
    width = max(6.0, min(MAX_WIDTH, 0.2 * len(pieces) + 2))
    fig = Figure(figsize=(width, 3.4))
    fig.subplots_adjust(left=1.0 / width, right=1 - 0.15 / width, bottom=0.24, top=0.9)  # margins in inches
    ax = fig.add_subplot()
    x = np.arange(len(pieces))
    bottom = LOGIT_LIMITS[0] * 0.8 if scale == "logit" else 0.0  # bars from 0 vanish on a logit axis
    ax.bar(x, conf - bottom, bottom=bottom, color=[MASKED_COLOUR if m else KEPT_COLOUR for m in masked], width=0.8)
    ax.axhline(p_thr, color="black", ls="--", lw=1, label=f"p_thr = {p_thr:.3f}")
    ax.set_yscale(scale)
    if scale == "logit":
        ax.set_ylim(bottom, 1 - LOGIT_LIMITS[0] * 0.05)
        ticks = [t for t in LOGIT_TICKS if bottom <= t <= 1 - LOGIT_LIMITS[0] * 0.05]
        ax.set_yticks(ticks, [f"{t:g}" for t in ticks])  # plain numbers: no mathtext to parse on each redraw
        ax.yaxis.set_minor_formatter(NullFormatter())
    _piece_labels(ax, pieces, _label_size(len(pieces), width - 1.15))
    ax.set_xlim(-0.6, len(pieces) - 0.4)
    ax.set_ylabel("confidence")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or mask_summary(masked, p_thr) + " — red = <mask>", fontsize=10)
    return fig


def mask_share_figure(thresholds: Sequence[float], counts: Sequence[int], n_tokens: int,
                      p_thr: float | None = None, title: str = "") -> Figure:
    """Share of masked tokens as a function of p_thr."""
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.add_subplot()
    share = 100 * np.asarray(counts, dtype=float) / max(n_tokens, 1)
    ax.plot(thresholds, share, marker=".", color=MASKED_COLOUR)
    if all(0 < t < 1 for t in thresholds):
        ax.set_xscale("logit")  # spreads out the thresholds near 1
    if p_thr is not None:
        ax.axvline(p_thr, color="black", ls="--", lw=1, label=f"p_thr = {p_thr:.3f}")
        ax.legend(fontsize=8)
    ax.set_xlabel("p_thr")
    ax.set_ylabel("masked tokens (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title or f"masked share of {n_tokens} greedy-CTC tokens", fontsize=10)
    return fig


def sequence_html(pieces: Sequence[str], masked: Sequence[bool], filled: Sequence[int] = (),
                  probs: dict[int, float] | None = None) -> str:
    """A token sequence as coloured boxes: masks dark, positions in ``filled`` green (with probability)."""
    probs = probs or {}
    cells = []
    for i, (p, m) in enumerate(zip(pieces, masked, strict=True)):
        if m:
            bg, fg, text = MASK_CELL, "#ffffff", "&lt;mask&gt;"
        elif i in filled:
            bg, fg, text = "#a5d6a7", "#000000", html.escape(p)
        else:
            bg, fg, text = KEPT_CELL, "#000000", html.escape(p)
        sub = f"<sub>{probs[i]:.2f}</sub>" if i in probs else ""
        cells.append(f'<span class="kd-tok" style="display:inline-block;margin:1px;padding:1px 3px;'
                     f'border-radius:3px;background:{bg};color:{fg};font-family:monospace">{text}{sub}</span>')
    return '<div class="kd-sequence">' + "".join(cells) + "</div>"


def candidates_figure(candidates: Sequence[tuple], title: str = "") -> Figure:
    """One iteration's candidates: each still-masked position's best probability, the k filled in green
    (eq 5: the easiest positions first)."""
    fig = Figure(figsize=(max(5.0, min(16.0, 0.3 * len(candidates) + 2)), 3.0), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(candidates))
    ax.bar(x, [c[3] for c in candidates], color=["#2e7d32" if c[4] else "#bdbdbd" for c in candidates])
    ax.set_xticks(x, [f"{c[2]} @{c[0]}" for c in candidates], rotation=90,
                  fontsize=max(5, min(9, 500 // max(len(candidates), 1))))
    ax.set_ylim(0, 1)
    ax.set_ylabel("max p(y_l | y_obs, H)")
    default = f"{sum(c[4] for c in candidates)} of {len(candidates)} masks filled (green)" if candidates else \
        "no masks to fill"
    ax.set_title(title or default, fontsize=10)
    return fig


def _grid_colours(initial_mask: Sequence[bool], steps: Sequence[Sequence[tuple]]) -> np.ndarray:
    """RGBA per (row, position): row 0 the masked CTC output, row r the state after iteration r."""
    cmap, norm = colormaps[PROB_CMAP], Normalize(0, 1)
    n = len(initial_mask)
    img = np.ones((len(steps) + 1, n, 4))
    img[0] = [to_rgba(MASK_CELL if m else KEPT_CELL) for m in initial_mask]
    masked, done = list(initial_mask), {}
    for r, step in enumerate(steps, start=1):
        now = {f[0]: f[3] for f in step}
        for i in range(n):
            if i in now:
                img[r, i] = cmap(norm(now[i]))
            elif i in done:
                img[r, i] = _faded(cmap(norm(done[i])))
            elif masked[i]:
                img[r, i] = to_rgba(MASK_CELL)
            else:
                img[r, i] = to_rgba(LATER_KEPT_CELL)
        done.update(now)
    return img


def fill_grid_figure(ctc_pieces: Sequence[str], initial_mask: Sequence[bool], fills: Sequence[Sequence[tuple]],
                     upto: int | None = None, title: str = "") -> Figure:
    """The easy-first walk (eq 5) as a grid: a row for the masked CTC output, then one row per iteration
    where the positions filled in it show their token, coloured by probability; later masks stay dark."""
    steps = list(fills[: len(fills) if upto is None else upto])
    n, rows = len(ctc_pieces), len(steps) + 1
    height = 0.3 * rows + 1.3
    width = max(6.0, min(MAX_WIDTH, 0.22 * n + 2))
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=1.0 / width, right=1 - 1.1 / width, bottom=0.55 / height, top=1 - 0.45 / height)
    ax = fig.add_subplot()
    ax.imshow(_grid_colours(initial_mask, steps), aspect="auto", interpolation="nearest")
    size, rot = _label_size(n, width - 2.1, 8), _rotation(n)
    for i, (p, m) in enumerate(zip(ctc_pieces, initial_mask, strict=True)):
        if not m:
            ax.text(i, 0, p, ha="center", va="center", rotation=rot, fontsize=size)
    for r, step in enumerate(steps, start=1):
        for f in step:
            ax.text(f[0], r, f[2], ha="center", va="center", rotation=rot, fontsize=size)
    ax.vlines(np.arange(n + 1) - 0.5, -0.5, rows - 0.5, color="white", lw=0.6)
    ax.hlines(np.arange(rows + 1) - 0.5, -0.5, n - 0.5, color="white", lw=0.6)
    ax.set_yticks(range(rows), ["CTC + masks"] + [f"iter {r}" for r in range(1, rows)], fontsize=8)
    every = max(1, -(-n // 25))
    ax.set_xticks(range(0, n, every))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("token position")
    cax = fig.add_axes((1 - 0.95 / width, 0.55 / height, 0.15 / width, 1 - 1.0 / height))
    fig.colorbar(ScalarMappable(Normalize(0, 1), colormaps[PROB_CMAP]), cax=cax, label="fill probability")
    ax.set_title(title or f"easy-first mask filling: {len(steps)} of {len(fills)} iterations", fontsize=10)
    return fig


def _faded(rgba: tuple) -> tuple:
    r, g, b, _ = rgba
    return (r, g, b, 0.35)
