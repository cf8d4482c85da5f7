"""Figures of notebook 03: Algorithm 1 (Mask-CTC beam search) as a tree, error rate and RTF against B, the AR
joint beam per step, decoder calls of both, and the two end rules of the AR search.

Pure matplotlib on plain data (traces, lists, numbers); every function returns a ``Figure``.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.colors as mcolors
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

from kdlab.search.types import AttentionBeamTrace, MaskBeamTrace

_NOTE = "measured on this machine: 1 thread, batch 1, shared CPU"
LABEL_PT = 10  # node labels of the beam tree and points of the end-rule plot: readable at widget resolution


def _fill_label(chosen: list[tuple[int, int]], vocab: Sequence[str]) -> str:
    """``"12:ar 40:h"``: the positions a node filled and their pieces (▁ shown as _)."""
    return " ".join(f"{p}:{vocab[t].replace('▁', '_')}" for p, t in sorted(chosen))


def mask_beam_tree(trace: MaskBeamTrace, vocab: Sequence[str], first: int = 1, count: int = 5) -> Figure:
    """Ω₀ after each iteration of Algorithm 1 as a tree: x = iteration, y = rank in the beam (0 = best), an
    edge from each hypothesis to the parent it extends, colour = accumulated eq 5 log posterior, label = the
    positions:pieces it filled. Shows iterations ``first … first+count−1`` (and their parents)."""
    its = trace.iterations
    first = max(1, min(first, max(len(its), 1)))
    shown = range(first, min(first + count, len(its) + 1))
    width = max(len(b.beam) for b in its) if its else 1
    w_in, h_in = 1.8 * (len(shown) + 1) + 1.6, 0.75 * width + 1.8
    fig = Figure(figsize=(w_in, h_in))  # fixed margins: a widget redraws it on every slider move
    ax = fig.add_axes((0.9 / w_in, 0.6 / h_in, 1 - 2.2 / w_in, 1 - 1.0 / h_in))
    cax = fig.add_axes((1 - 1.0 / w_in, 0.6 / h_in, 0.15 / w_in, 1 - 1.0 / h_in))
    scores = [h.score for i in shown for h in its[i - 1].beam] or [0.0]
    norm = mcolors.Normalize(min(scores), max(max(scores), min(scores) + 1e-9))
    cmap = colormaps["viridis"]
    prev = [0.0] if first == 1 else [h.score for h in its[first - 2].beam]
    ax.scatter([first - 1] * len(prev), range(len(prev)), s=60, c="lightgray", edgecolors="k", zorder=3)
    for i in shown:
        beam = its[i - 1].beam
        for r, h in enumerate(beam):
            ax.plot([i - 1, i], [h.parent, r], color="0.6", lw=0.8, zorder=1)
            ax.annotate(_fill_label(h.chosen, vocab), (i, r), xytext=(7, 4), textcoords="offset points",
                        fontsize=LABEL_PT, va="bottom")
        ax.scatter([i] * len(beam), range(len(beam)), s=60, c=[cmap(norm(h.score)) for h in beam],
                   edgecolors="k", zorder=3)
    ax.set_xlim(first - 1.3, shown[-1] + 0.9 if len(shown) else first)
    ax.set_ylim(width - 0.5, -0.7)
    ax.set_xticks(range(first - 1, (shown[-1] if len(shown) else first - 1) + 1))
    ax.set_xlabel("iteration i (0 = greedy CTC with masks)")
    ax.set_ylabel("rank in Ω₀ (0 = best)")
    n_mask = sum(trace.initial_mask)
    ax.set_title(f"Algorithm 1: B = {width}, {n_mask} masks, {len(its)} iterations; label = position:piece filled",
                 fontsize=LABEL_PT + 2)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, label="score (Σ log p, eq 5)")
    return fig


def beam_sweep_plot(beams: Sequence[int], rates: Sequence[float], rtfs: Sequence[float], unit: str = "word",
                    title: str = "") -> Figure:
    """Error rate and real-time factor against the beam size B (the paper's Table 3 as two curves)."""
    name = "WER (%)" if unit == "word" else "CER (%)"
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(beams, rates, "o-", color="C0")
    ax2.plot(beams, rtfs, "s-", color="C3")
    for ax, ys, fmt in ((ax1, rates, "{:.2f}"), (ax2, rtfs, "{:.3f}")):
        for b, y in zip(beams, ys, strict=True):
            ax.annotate(fmt.format(y), (b, y), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=8)
        ax.set_xticks(list(beams))
        ax.margins(x=0.08, y=0.2)
        ax.set_xlabel("beam size B")
        ax.grid(alpha=0.3)
    ax1.set_ylabel(name)
    ax2.set_ylabel("RTF")
    ax2.set_ylim(0, max(rtfs) * 1.25 if rtfs else 1)
    ax1.set_title("error rate")
    ax2.set_title(f"RTF ({_NOTE})", fontsize=9)
    if title:
        fig.suptitle(title)
    return fig


def ar_beam_plot(trace: AttentionBeamTrace, best: Sequence[int], max_steps: int | None = None) -> Figure:
    """The AR joint beam per step: running hypotheses' joint scores (dots), hypotheses that ended with
    ``<eos>`` (crosses) and the prefixes of the returned 1-best (line)."""
    steps = trace.steps[:max_steps]
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    ax = fig.add_subplot()
    xs = [s.step for s in steps for _ in s.running]
    ys = [r[1] for s in steps for r in s.running]
    ax.scatter(xs, ys, s=8, color="0.55", label="running hypotheses")
    ex = [(s.step, sc) for s in steps for _, sc in s.ended]
    if ex:
        ax.scatter(*zip(*ex, strict=True), marker="x", color="C3", s=30, label="ended (<eos>)")
    path = [(s.step, r[1]) for s in steps for r in s.running if list(r[0]) == list(best[: len(r[0])])]
    if path:
        ax.plot(*zip(*path, strict=True), color="C0", lw=1.5, label="prefixes of the 1-best")
    ax.set_xlabel("decoder step (one batched decoder call each)")
    ax.set_ylabel("joint score")
    ax.set_title(f"AR joint CTC/attention beam search: {len(trace.steps)} steps")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def decoder_calls_plot(labels: Sequence[str], counts: Sequence[int], title: str = "") -> Figure:
    """Horizontal bars of decoder calls (e.g. NAR ⌈N_mask/K⌉ CMLM calls vs AR tokens + 1)."""
    fig = Figure(figsize=(8, 0.5 * len(labels) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i}" for i in range(len(labels))]
    ax.barh(range(len(labels)), counts, color=colors)
    for i, c in enumerate(counts):
        ax.annotate(str(c), (c, i), xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_yticks(range(len(labels)), list(labels))
    ax.invert_yaxis()
    ax.set_xlabel("decoder calls for this utterance")
    ax.set_xlim(0, max(counts, default=1) * 1.15 + 1)
    ax.set_title(title or "decoder calls: NAR vs AR")
    return fig


def end_rule_plot(score_gains: Sequence[float], error_changes: Sequence[int], labels: Sequence[str],
                  unit: str = "word") -> Figure:
    """Utterances whose 1-best depends on the end rule: x = exact − beam joint score, y = exact − beam errors.
    Up and right = the exact rule scores higher but transcribes worse (a model error the beam rule hid)."""
    what = "word" if unit == "word" else "character"
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.axhline(0, color="0.5", lw=0.8)
    ax.axvline(0, color="0.5", lw=0.8)
    if not score_gains:
        ax.text(0.5, 0.5, "no utterance's 1-best depends on the end rule", ha="center", va="center",
                transform=ax.transAxes)
    else:
        colors = ["C3" if g > 0 and e > 0 else "C0" for g, e in zip(score_gains, error_changes, strict=True)]
        ax.scatter(score_gains, error_changes, c=colors, s=40, zorder=3)
        for x, y, name in zip(score_gains, error_changes, labels, strict=True):
            ax.annotate(name, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=LABEL_PT - 1)
        top = max(max(error_changes), 1) + 0.5
        span = max(max(abs(g) for g in score_gains), 1e-3) * 1.6
        left = -0.25 * span
        ax.axhspan(0.5, top, xmin=-left / (span - left), color="C3", alpha=0.07)
        ax.set_xlim(left, span)
        ax.set_ylim(min(min(error_changes), -1) - 0.5, top)
    ax.set_xlabel("joint score: exact − beam  (> 0: exact found a hypothesis the model prefers)")
    ax.set_ylabel(f"{what} errors: exact − beam")
    ax.set_title("search error vs model error (red: higher score, worse transcript)")
    return fig
